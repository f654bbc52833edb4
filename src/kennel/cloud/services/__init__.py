"""One package per AWS service: the provider (operations) beside its typed state."""
