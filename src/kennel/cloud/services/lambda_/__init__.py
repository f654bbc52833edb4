"""AWS Lambda (rest-json): functions, versions, aliases, concurrency, policies and invocations."""
