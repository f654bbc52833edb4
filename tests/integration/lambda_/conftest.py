"""Fixtures the Lambda tests share: a role functions may run as, a client, one warm echo function.

Module-scoped, so each test module gets its own (and test_lambda_lifecycle.py, which restarts its own
gateway, defines its own ``role``)."""

from __future__ import annotations

import pytest
from tests.integration.support.lambda_functions import create, lambda_client, make_role


@pytest.fixture(scope="module")
def role(cloud) -> str:
    return make_role(cloud)


@pytest.fixture(scope="module")
def lam(cloud):
    return lambda_client(cloud)


@pytest.fixture(scope="module")
def echo(lam, role) -> str:
    """One warm function shared by the read-only tests."""
    return create(lam, role, Environment={"Variables": {"GREETING": "woof"}})
