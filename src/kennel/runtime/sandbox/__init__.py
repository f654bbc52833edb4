"""The one door for user code: every process that runs it starts through :class:`Sandbox`."""

from kennel.runtime.sandbox.core import (
    GATEWAY_SOCKET,
    UNCONFINED_NOTE,
    Sandbox,
    SandboxProcess,
    SandboxUnavailable,
    gateway_socket,
)
from kennel.runtime.sandbox.network import SandboxNetwork
from kennel.runtime.sandbox.spec import Limits, Mount, SandboxSpec

__all__ = [
    "GATEWAY_SOCKET",
    "UNCONFINED_NOTE",
    "Limits",
    "Mount",
    "Sandbox",
    "SandboxNetwork",
    "SandboxProcess",
    "SandboxSpec",
    "SandboxUnavailable",
    "gateway_socket",
]
