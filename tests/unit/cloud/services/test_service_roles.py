"""ServiceRoles against a real store, without a gateway: who may pass which role to which service."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kennel.cloud.audit import AuditLog
from kennel.cloud.auth import tables as t
from kennel.cloud.auth.identity import IdentityDirectory, Principal
from kennel.cloud.authz import Authorizer
from kennel.cloud.errors import AwsError
from kennel.cloud.services.base import Context
from kennel.cloud.services.service_roles import LAMBDA, SAGEMAKER, ServiceRoles
from kennel.cloud.statestore import StateStore

ACCT = "111122223333"
LAMBDA_SVC, SM_SVC = "lambda.amazonaws.com", "sagemaker.amazonaws.com"
JOB = f"arn:aws:sagemaker:us-east-1:{ACCT}:training-job/j1"


def _trust(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _trusting(service: str, **extra: object) -> dict:
    return {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole", **extra}


@pytest.fixture
def roles(tmp_path: Path) -> Iterator[ServiceRoles]:
    store = StateStore(tmp_path / "kennel.db")
    identities = IdentityDirectory(store, ACCT, time.time)
    audit = AuditLog(store)
    now = time.time()
    rows = {
        ("sm", "/"): _trust(_trusting(SM_SVC)),
        ("fn", "/service-role/"): _trust(_trusting(LAMBDA_SVC)),
        ("both-but-deny-sm", "/"): _trust(
            _trusting(LAMBDA_SVC),
            _trusting(SM_SVC),
            {"Effect": "Deny", "Principal": {"Service": SM_SVC}, "Action": "sts:AssumeRole"},
        ),
        ("sm-this-account", "/"): _trust(
            _trusting(SM_SVC, Condition={"StringEquals": {"aws:SourceAccount": ACCT}})
        ),
        ("sm-jobs-only", "/"): _trust(
            _trusting(
                SM_SVC, Condition={"ArnLike": {"aws:SourceArn": f"arn:aws:sagemaker:*:{ACCT}:training-job/*"}}
            )
        ),
    }
    with store.write() as conn:
        for index, ((name, path), trust) in enumerate(rows.items()):
            conn.execute(t.roles.insert().values(
                name=name, role_id=f"AROA{index}", path=path, trust_policy=trust, created=now))  # fmt: skip
        conn.execute(t.users.insert().values(name="dev", user_id="AIDADEV", path="/", created=now))
        passing = {"Effect": "Allow", "Action": "iam:PassRole", "Resource": f"arn:aws:iam::{ACCT}:role/sm",
                   "Condition": {"StringEquals": {"iam:PassedToService": SM_SVC}}}  # fmt: skip
        conn.execute(t.inline_policies.insert().values(
            principal_type="user", principal_name="dev", policy_name="p",
            document=json.dumps({"Version": "2012-10-17", "Statement": [passing]})))  # fmt: skip
    yield ServiceRoles(store, identities, Authorizer(identities, audit))
    audit.close()
    store.close()


def _ctx() -> Context:
    arn = f"arn:aws:iam::{ACCT}:user/dev"
    dev = Principal(arn=arn, identity_arn=arn, kind="user", name="dev", user_id="AIDADEV", account=ACCT)
    return Context("r", "sagemaker", "CreateTrainingJob", dev, "us-east-1", ACCT, datetime.now(UTC))


def test_trust_is_evaluated_as_a_policy(roles: ServiceRoles) -> None:
    assert roles.trusts("sm", SM_SVC) and not roles.trusts("sm", LAMBDA_SVC)
    assert roles.trusts("both-but-deny-sm", LAMBDA_SVC)
    assert not roles.trusts("both-but-deny-sm", SM_SVC)  # an explicit Deny in the trust policy wins
    assert roles.trusts("sm-this-account", SM_SVC)
    assert not roles.trusts("sm-this-account", SM_SVC, source_account="999988887777")
    assert roles.trusts("sm-jobs-only", SM_SVC, source_arn=JOB)
    assert not roles.trusts("sm-jobs-only", SM_SVC, source_arn=f"arn:aws:sagemaker:us-east-1:{ACCT}:model/m")
    assert not roles.trusts("missing", SM_SVC)


def test_assumable_needs_the_exact_arn(roles: ServiceRoles) -> None:
    assert roles.assumable(f"arn:aws:iam::{ACCT}:role/service-role/fn", LAMBDA_SVC) == "fn"
    for wrong in (f"arn:aws:iam::{ACCT}:role/fn", "arn:aws:iam::999988887777:role/service-role/fn", "fn"):
        with pytest.raises(AwsError) as refused:
            roles.assumable(wrong, LAMBDA_SVC, errors=LAMBDA)
        assert (refused.value.code, refused.value.message) == (
            "InvalidParameterValueException",
            "The role defined for the function cannot be assumed by Lambda.",
        )


def test_require_passable_checks_pass_role_then_trust(roles: ServiceRoles) -> None:
    sm_role = f"arn:aws:iam::{ACCT}:role/sm"
    assert roles.require_passable(_ctx(), sm_role, SM_SVC, JOB) == "sm"
    with pytest.raises(AwsError) as other_service:  # PassRole allowed for SageMaker only
        roles.require_passable(_ctx(), sm_role, LAMBDA_SVC, f"arn:aws:lambda:us-east-1:{ACCT}:function:f")
    assert other_service.value.code == "AccessDeniedException"
    assert other_service.value.message == (
        f"User: arn:aws:iam::{ACCT}:user/dev is not authorized to perform: iam:PassRole on resource: "
        f"{sm_role} because no identity-based policy allows the iam:PassRole action"
    )
    with pytest.raises(AwsError) as no_pass:  # no PassRole on this role: refused before its trust is read
        roles.require_passable(
            _ctx(), f"arn:aws:iam::{ACCT}:role/sm-jobs-only", SM_SVC, JOB, errors=SAGEMAKER
        )
    assert no_pass.value.code == "AccessDeniedException"
