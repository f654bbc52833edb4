"""STS's checks of AssumeRole session policies (pure: no store, no gateway)."""

from __future__ import annotations

import json
import secrets

import pytest

from kennel.cloud.errors import AwsError
from kennel.cloud.services.sts.session_policy import (
    MAX_POLICY_ARNS,
    SessionPolicies,
    check_session_policies,
    packed_percent,
)

ACCT = "111122223333"
READ_ONLY = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
MINE = f"arn:aws:iam::{ACCT}:policy/team/readers"


def _doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def check(policy: str | None = None, arns: list[str] | None = None) -> SessionPolicies:
    descriptors = None if arns is None else [{"arn": a} for a in arns]
    known = {READ_ONLY, MINE}
    return check_session_policies(policy, descriptors, role_account=ACCT, policy_exists=known.__contains__)


def code(policy: str | None = None, arns: list[str] | None = None) -> str:
    with pytest.raises(AwsError) as failed:
        check(policy, arns)
    return failed.value.code


def test_nothing_passed_is_no_limit() -> None:
    assert check() == SessionPolicies(None, None, 0)
    assert check(arns=[]).policy_arns is None  # an empty list passes no policy


def test_small_policies_report_a_small_packed_size() -> None:
    only = _doc({"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"})
    got = check(only, [READ_ONLY, MINE])
    assert got.policy == only and got.policy_arns == (READ_ONLY, MINE)
    assert 0 < got.packed_percent < 30
    assert packed_percent(only, []) < got.packed_percent  # the ARNs count too


def test_arn_count_and_kinds() -> None:
    assert code(arns=[READ_ONLY] * (MAX_POLICY_ARNS + 1)) == "ValidationError"
    assert check(arns=[READ_ONLY] * MAX_POLICY_ARNS).policy_arns == (READ_ONLY,) * MAX_POLICY_ARNS
    assert code(arns=[f"arn:aws:iam::{ACCT}:policy/missing"]) == "MalformedPolicyDocument"
    assert code(arns=["arn:aws:iam::999988887777:policy/team/readers"]) == "MalformedPolicyDocument"
    assert code(arns=[f"arn:aws:iam::{ACCT}:role/not-a-policy"]) == "MalformedPolicyDocument"


def test_inline_policy_grammar() -> None:
    assert code("{nope") == "MalformedPolicyDocument"
    assert code(_doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Principal": "*"})) == (
        "MalformedPolicyDocument"
    )
    assert code(_doc({"Effect": "Allow", "Action": "s3:*"})) == "MalformedPolicyDocument"


def test_plaintext_and_packed_limits() -> None:
    many = _doc(*[{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::b{i}/*"}
                  for i in range(60)])  # fmt: skip
    assert len(json.dumps(json.loads(many), separators=(",", ":"))) > 2048
    assert code(many) == "PackedPolicyTooLarge"
    noisy = _doc({"Effect": "Allow", "Action": "s3:GetObject",
                  "Resource": [f"arn:aws:s3:::{secrets.token_urlsafe(60)}" for _ in range(19)]})  # fmt: skip
    assert len(noisy) < 2048  # within the plaintext limit, but random text does not pack
    with pytest.raises(AwsError) as failed:
        check(noisy)
    assert failed.value.code == "PackedPolicyTooLarge"
    assert failed.value.message.startswith("Packed policy consumes 1")
    assert failed.value.message.endswith("% of allotted space, please use smaller policy.")
