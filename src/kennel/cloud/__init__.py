"""Kennel's AWS-compatible control and data plane."""
