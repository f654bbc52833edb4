"""`make demo`: the seeds' workflow through the local cloud's public API (boto3 as a user would)."""
