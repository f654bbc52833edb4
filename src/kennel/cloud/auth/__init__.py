"""Request authentication: SigV4 verification and credentials."""
