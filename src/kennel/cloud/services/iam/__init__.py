"""IAM: users, access keys, roles, managed and inline policies."""
