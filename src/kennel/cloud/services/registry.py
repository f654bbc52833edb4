"""The service providers the gateway serves, in start-up order (one line per service)."""

from __future__ import annotations

from kennel.cloud.services.iam.provider import IamProvider
from kennel.cloud.services.sts.provider import StsProvider

PROVIDERS: list[type] = [
    IamProvider,
    StsProvider,
]
