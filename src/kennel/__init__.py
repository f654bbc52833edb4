"""Kennel: the AWS ML workflow for real on one machine, behind the real AWS wire protocols."""

__version__ = "0.1.0"
