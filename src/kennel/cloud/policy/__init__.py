"""IAM policy language and the pure authorisation decision."""
