"""S3: SeaweedFS behind the gateway."""
