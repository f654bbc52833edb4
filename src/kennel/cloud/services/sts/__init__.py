"""STS: caller identity and role sessions."""
