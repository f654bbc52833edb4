"""Table-driven tests of the IAM policy language and the authorisation decision.

The case tables are kept one case per line (``fmt: off``) so each reads as a row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kennel.cloud.policy.evaluate import AuthzRequest, Outcome, PolicyType, evaluate, principal_matches
from kennel.cloud.policy.policy import MalformedPolicyDocument, Policy, PolicyKind, parse_policy

ACCT, OTHER = "111122223333", "444455556666"
USER = f"arn:aws:iam::{ACCT}:user/alice"
BOB = f"arn:aws:iam::{ACCT}:user/bob"
SESSION = f"arn:aws:sts::{ACCT}:assumed-role/trainer/job-42"
FOREIGN = f"arn:aws:iam::{OTHER}:user/mallory"
ENDPOINT = f"arn:aws:sagemaker:us-east-1:{ACCT}:endpoint/my-endpoint"
FUNCTION = f"arn:aws:lambda:us-east-1:{ACCT}:function:train"
OBJECT = "arn:aws:s3:::data/alice/train.csv"
EP = ENDPOINT.rsplit("/", 1)[0]  # ...:endpoint
FN = FUNCTION.rsplit(":", 1)[0]  # ...:function
ALLOW, EXPLICIT, IMPLICIT = Outcome.ALLOW, Outcome.EXPLICIT_DENY, Outcome.IMPLICIT_DENY
P = pytest.param


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def policy(*statements: dict[str, Any], version: str = "2012-10-17", name: str = "p", **kw: Any) -> Policy:
    return parse_policy({"Version": version, "Statement": list(statements)}, name=name, **kw)


NOT_IAM = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
DENY_BUT_INVOKE = {"Effect": "Deny", "NotAction": "sagemaker:InvokeEndpoint", "Resource": "*"}
BUT_ENDPOINT = {"Effect": "Allow", "Action": "sagemaker:*", "NotResource": ENDPOINT}
INVOKE = "sagemaker:InvokeEndpoint"

# fmt: off
IDENTITY_CASES = [
    P([], "s3:GetObject", OBJECT, IMPLICIT, id="default-deny-no-policies"),
    P([allow("s3:GetObject", OBJECT)], "s3:GetObject", OBJECT, ALLOW, id="allow-exact"),
    P([allow("s3:GetObject", OBJECT)], "s3:PutObject", OBJECT, IMPLICIT, id="allow-other-action-only"),
    P([allow("s3:*"), deny("s3:GetObject", OBJECT)], "s3:GetObject", OBJECT, EXPLICIT, id="deny-beats-allow"),
    P([deny("s3:Put*"), allow("s3:*")], "s3:GetObject", OBJECT, ALLOW, id="deny-other-action-irrelevant"),
    P([NOT_IAM], "s3:GetObject", OBJECT, ALLOW, id="notaction-allow-grants-others"),
    P([NOT_IAM], "iam:CreateUser", "*", IMPLICIT, id="notaction-allow-not-listed"),
    P([allow("*"), DENY_BUT_INVOKE], "lambda:InvokeFunction", FUNCTION, EXPLICIT, id="notaction-deny-others"),
    P([allow("*"), DENY_BUT_INVOKE], INVOKE, ENDPOINT, ALLOW, id="notaction-deny-spares-listed"),
    P([DENY_BUT_INVOKE], INVOKE, ENDPOINT, IMPLICIT, id="deny-never-grants"),
    P([BUT_ENDPOINT], INVOKE, f"{EP}/other", ALLOW, id="notresource-allow-other"),
    P([BUT_ENDPOINT], INVOKE, ENDPOINT, IMPLICIT, id="notresource-allow-listed"),
    P([allow("*"), {**BUT_ENDPOINT, "Effect": "Deny"}], INVOKE, f"{EP}/b", EXPLICIT, id="notresource-deny"),
    P([allow("SageMaker:invokeENDPOINT", ENDPOINT)], INVOKE, ENDPOINT, ALLOW, id="action-case-insensitive"),
    P([allow("s3:*", "arn:aws:s3:::Data/*")], "s3:GetObject", OBJECT, IMPLICIT, id="resource-case-sensitive"),
    P([allow("sagemaker:*", f"{EP}/My-Endpoint")], INVOKE, ENDPOINT, IMPLICIT, id="sagemaker-lowercased-arn"),
    P([allow("iam:*AccessKey*")], "iam:CreateAccessKey", "*", ALLOW, id="action-star-middle"),
    P([allow("s3:Get?bject")], "s3:GetObject", OBJECT, ALLOW, id="action-qmark"),
    P([allow("s3:Get?")], "s3:GetObject", OBJECT, IMPLICIT, id="action-qmark-is-one-char"),
    P([allow("*")], "lambda:InvokeFunction", FUNCTION, ALLOW, id="action-star-all"),
    P([allow("sagemaker:*")], "lambda:InvokeFunction", FUNCTION, IMPLICIT, id="action-service-prefix"),
    P([allow("lambda:*", f"{FN}:tr*")], "lambda:InvokeFunction", FUNCTION, ALLOW, id="resource-star-suffix"),
    P([allow("lambda:*", FUNCTION)], "lambda:Invoke", f"{FUNCTION}:prod", IMPLICIT, id="lambda-unqualified"),
    P([allow("lambda:*", f"{FUNCTION}:*")], "lambda:Invoke", f"{FUNCTION}:prod", ALLOW,
      id="lambda-qualified"),
    P([allow("lambda:*", f"arn:aws:lambda:*:{ACCT}:function:*")], "lambda:Invoke", f"{FUNCTION}:7", ALLOW,
      id="segment-end-star-crosses-colon"),
    P([allow("lambda:*", f"{FN}:t*n")], "lambda:Invoke", f"{FN}:t:n", IMPLICIT, id="mid-segment-star-stays"),
    P([allow("lambda:*", f"{FN}:t*n")], "lambda:Invoke", FUNCTION, ALLOW, id="mid-segment-star-matches"),
    P([allow("sagemaker:*", f"{EP}/ep-?")], INVOKE, f"{EP}/ep-1", ALLOW, id="resource-qmark"),
    P([allow("sagemaker:*", f"{EP}/ep-?")], INVOKE, f"{EP}/ep-12", IMPLICIT, id="resource-qmark-one-char"),
    P([allow("s3:*", "arn:aws:s3:::data/*/train.csv")], "s3:GetObject", OBJECT, ALLOW, id="star-spans-slash"),
    P([allow("s3:ListAllMyBuckets", OBJECT)], "s3:ListAllMyBuckets", "*", IMPLICIT, id="arn-vs-star-request"),
    P([allow("s3:*", ["arn:aws:s3:::x", OBJECT])], "s3:GetObject", OBJECT, ALLOW, id="resource-list"),
]
# fmt: on


@pytest.mark.parametrize(("statements", "action", "resource", "expected"), IDENTITY_CASES)
def test_identity_policies(statements: list[Any], action: str, resource: str, expected: Outcome) -> None:
    policies = [policy(s) for s in statements]  # one policy per statement: denies must win across policies
    assert evaluate(AuthzRequest(USER, action, resource), policies).outcome is expected


HOME = "arn:aws:s3:::data/${aws:username}/*"
ROLE_ARN = f"arn:aws:iam::{ACCT}:role/trainer"
NEW = "2012-10-17"
# fmt: off
VARIABLE_CASES = [
    P(USER, allow("s3:*", HOME), OBJECT, NEW, ALLOW, id="username-own-prefix"),
    P(BOB, allow("s3:*", HOME), OBJECT, NEW, IMPLICIT, id="username-other-user"),
    P(SESSION, allow("s3:*", HOME), OBJECT, NEW, IMPLICIT, id="variable-missing-never-matches"),
    P(SESSION, allow("s3:*", "arn:aws:s3:::data/${aws:username, 'alice'}/*"), OBJECT, NEW, ALLOW,
      id="variable-default"),
    P(USER, allow("s3:*", "arn:aws:s3:::data/${*}"), "arn:aws:s3:::data/*", NEW, ALLOW, id="escape-star"),
    P(USER, allow("s3:*", "arn:aws:s3:::data/${*}"), OBJECT, NEW, IMPLICIT, id="escape-star-is-literal"),
    P(USER, allow("s3:*", "arn:aws:s3:::d${$}/*"), "arn:aws:s3:::d$/x", NEW, ALLOW, id="escape-dollar"),
    P(USER, allow("s3:*", HOME), OBJECT, "2008-10-17", IMPLICIT, id="old-version-no-variables"),
    P(USER, allow("s3:*", HOME), "arn:aws:s3:::data/${aws:username}/x", "2008-10-17", ALLOW,
      id="old-version-literal-text"),
    P(SESSION, allow("s3:*", Condition={"StringEquals": {"s3:prefix": "${aws:PrincipalArn}"}}), OBJECT, NEW,
      ALLOW, id="principal-arn-is-role-for-sessions"),
    P(USER, allow("s3:*", Condition={"StringLike": {"s3:prefix": "arn:aws:iam::${aws:PrincipalAccount}:*"}}),
      OBJECT, NEW, ALLOW, id="variable-in-condition-pattern"),
    P(BOB, allow("s3:*", Condition={"StringLike": {"s3:prefix": "arn:aws:iam::${aws:username}:role/*"}}),
      OBJECT, NEW, IMPLICIT, id="variable-in-condition-mismatch"),
]
# fmt: on


@pytest.mark.parametrize(("principal", "statement", "resource", "version", "expected"), VARIABLE_CASES)
def test_policy_variables(
    principal: str, statement: Any, resource: str, version: str, expected: Outcome
) -> None:
    request = AuthzRequest(principal, "s3:GetObject", resource, {"s3:prefix": ROLE_ARN})
    assert evaluate(request, [policy(statement, version=version)]).outcome is expected


NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NOON_EPOCH = int(NOON.timestamp())
MODEL, INSTANCE = "sagemaker:TargetModel", "sagemaker:InstanceTypes"
TAGS, REGION, TEAM = "aws:TagKeys", "aws:RequestedRegion", "aws:PrincipalTag/team"
IP, SRC = "aws:SourceIp", "aws:SourceArn"
SPLIT_REGION = f"arn:aws:lambda:us-east-1:extra:{ACCT}:function:train"
ANY_FN = f"arn:aws:lambda:*:{ACCT}:function:*"
TWO = ["eu-west-1", "us-east-1"]
# fmt: off
CONDITION_CASES = [
    P({"StringEquals": {REGION: "us-east-1"}}, {REGION: "us-east-1"}, True, id="str-eq"),
    P({"StringEquals": {REGION: "us-east-1"}}, {REGION: "US-EAST-1"}, False, id="str-eq-case-sensitive"),
    P({"StringEquals": {REGION: TWO}}, {"aws:requestedregion": "us-east-1"}, True, id="values-or-key-ci"),
    P({"StringNotEquals": {REGION: TWO}}, {REGION: "us-east-1"}, False, id="str-not-eq-nor-listed"),
    P({"StringNotEquals": {REGION: TWO}}, {REGION: "ap-south-1"}, True, id="str-not-eq-nor-unlisted"),
    P({"StringEqualsIgnoreCase": {MODEL: "M.TAR.gz"}}, {MODEL: "m.tar.gz"}, True, id="str-eq-ignore-case"),
    P({"StringNotEqualsIgnoreCase": {"aws:username": "ALICE"}}, {}, False, id="str-not-eq-ignore-case"),
    P({"StringLike": {INSTANCE: "ml.g5.*"}}, {INSTANCE: "ml.g5.xlarge"}, True,
      id="str-like"),
    P({"StringNotLike": {INSTANCE: ["ml.p4*", "ml.p5*"]}}, {INSTANCE: "ml.p5.x"}, False,
      id="str-not-like-multi"),
    P({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": 5}, True, id="num-lt"),
    P({"NumericLessThan": {"s3:max-keys": 10}}, {"s3:max-keys": "10"}, False, id="num-lt-boundary"),
    P({"NumericGreaterThanEquals": {"s3:max-keys": 10}}, {"s3:max-keys": 10}, True, id="num-ge"),
    P({"NumericLessThanEquals": {"s3:max-keys": 1.5}}, {"s3:max-keys": 2}, False, id="num-le"),
    P({"NumericGreaterThan": {"s3:max-keys": 1}}, {"s3:max-keys": 2}, True, id="num-gt"),
    P({"NumericEquals": {"s3:max-keys": [1, 2]}}, {"s3:max-keys": "2"}, True, id="num-eq-or"),
    P({"NumericNotEquals": {"s3:max-keys": [1, 2]}}, {"s3:max-keys": 2}, False, id="num-not-eq-nor"),
    P({"NumericEquals": {"s3:max-keys": 1}}, {"s3:max-keys": "one"}, False, id="num-wrong-type"),
    P({"DateLessThan": {"aws:CurrentTime": "2026-12-31T00:00:00Z"}}, {"aws:CurrentTime": NOON}, True,
      id="date-lt-current-time"),
    P({"DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}, {"aws:CurrentTime": NOON}, False,
      id="date-lt-expired"),
    P({"DateGreaterThan": {"aws:CurrentTime": 1767225600}}, {"aws:CurrentTime": "2026-06-01T12:00:00Z"}, True,
      id="date-epoch-policy-iso-request"),
    P({"DateEquals": {"aws:EpochTime": "2026-06-01T12:00:00+00:00"}}, {"aws:EpochTime": NOON_EPOCH}, True,
      id="date-eq-epoch-request"),
    P({"DateNotEquals": {"aws:CurrentTime": "2026-06-01T12:00:00Z"}}, {"aws:CurrentTime": NOON}, False,
      id="date-not-eq"),
    P({"DateGreaterThanEquals": {"aws:CurrentTime": "2026-06-01"}}, {"aws:CurrentTime": NOON}, True,
      id="date-ge-date-only"),
    P({"DateLessThanEquals": {"aws:CurrentTime": "2026-06-01T12:00:00Z"}}, {"aws:CurrentTime": NOON}, True,
      id="date-le-equal"),
    P({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": True}, True, id="bool-true"),
    P({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": "false"}, False, id="bool-false"),
    P({"BinaryEquals": {"x:Blob": "a2VubmVs"}}, {"x:Blob": b"kennel"}, True, id="binary-eq"),
    P({"IpAddress": {IP: "203.0.113.0/24"}}, {IP: "203.0.113.9"}, True, id="ipv4-in"),
    P({"IpAddress": {IP: "203.0.113.0/24"}}, {IP: "198.51.100.1"}, False, id="ipv4-out"),
    P({"IpAddress": {IP: ["10.0.0.0/8", "2001:db8::/32"]}}, {IP: "2001:db8::1"}, True, id="ipv6-in"),
    P({"NotIpAddress": {IP: ["10.0.0.0/8", "192.168.0.1"]}}, {IP: "192.168.0.1"}, False, id="not-ip-single"),
    P({"NotIpAddress": {IP: "10.0.0.0/8"}}, {IP: "192.168.0.1"}, True, id="not-ip-outside"),
    P({"IpAddress": {IP: "2001:db8::/32"}}, {IP: "10.0.0.1"}, False, id="ipv4-vs-ipv6-cidr"),
    P({"ArnLike": {SRC: "arn:aws:sagemaker:*"}}, {SRC: ENDPOINT}, False, id="arnlike-needs-six-segments"),
    P({"StringLike": {SRC: "arn:aws:sagemaker:*"}}, {SRC: ENDPOINT}, True, id="stringlike-whole-string"),
    P({"ArnLike": {SRC: ANY_FN}}, {SRC: SPLIT_REGION}, False, id="arnlike-star-stays-in-segment"),
    P({"StringLike": {SRC: ANY_FN}}, {SRC: SPLIT_REGION}, True, id="stringlike-star-crosses-colons"),
    P({"ArnLike": {SRC: "arn:aws:iam::*:role/*"}}, {SRC: ROLE_ARN}, True, id="arnlike-segments"),
    P({"ArnEquals": {SRC: f"{FN}:tr?in"}}, {SRC: FUNCTION}, True, id="arnequals-wildcards"),
    P({"ArnNotLike": {SRC: f"{FN}:*"}}, {SRC: FUNCTION}, False, id="arn-not-like"),
    P({"ArnNotEquals": {SRC: [f"{FN}:a", f"{FN}:b"]}}, {SRC: FUNCTION}, True, id="arn-not-equals-nor"),
    P({"StringEquals": {TEAM: "ml"}}, {}, False, id="missing-key-false"),
    P({"StringEqualsIfExists": {TEAM: "ml"}}, {}, True, id="missing-key-if-exists"),
    P({"StringEqualsIfExists": {TEAM: "ml"}}, {TEAM: "web"}, False, id="if-exists-present-mismatch"),
    P({"NumericLessThanIfExists": {"s3:max-keys": 5}}, {}, True, id="numeric-if-exists-missing"),
    P({"StringNotLike": {TEAM: "ml"}}, {}, True, id="missing-key-negated-true"),
    P({"Null": {TEAM: "true"}}, {}, True, id="null-true-missing"),
    P({"Null": {TEAM: "true"}}, {TEAM: "ml"}, False, id="null-true-present"),
    P({"Null": {TEAM: False}}, {TEAM: "ml"}, True, id="null-false-present"),
    P({"Null": {TEAM: "false"}}, {}, False, id="null-false-missing"),
    P({"ForAllValues:StringEquals": {TAGS: ["a", "b"]}}, {TAGS: ["a"]}, True, id="forall-subset"),
    P({"ForAllValues:StringEquals": {TAGS: ["a", "b"]}}, {TAGS: ["a", "c"]}, False, id="forall-not-subset"),
    P({"ForAllValues:StringEquals": {TAGS: ["a"]}}, {}, True, id="forall-missing"),
    P({"ForAllValues:StringEquals": {TAGS: ["a"]}}, {TAGS: []}, True, id="forall-empty"),
    P({"ForAnyValue:StringEquals": {TAGS: ["a", "b"]}}, {TAGS: ["c", "b"]}, True, id="forany-overlap"),
    P({"ForAnyValue:StringEquals": {TAGS: ["a"]}}, {TAGS: ["c"]}, False, id="forany-disjoint"),
    P({"ForAnyValue:StringEquals": {TAGS: ["a"]}}, {}, False, id="forany-missing"),
    P({"ForAnyValue:StringEquals": {TAGS: ["a"]}}, {TAGS: []}, False, id="forany-empty"),
    P({"ForAnyValue:StringEqualsIfExists": {TAGS: ["a"]}}, {}, True, id="forany-if-exists-missing"),
    P({"ForAllValues:StringNotLike": {TAGS: "key1*"}}, {TAGS: ["key1:legal"]}, False,
      id="forall-notlike-listed"),
    P({"ForAllValues:StringNotLike": {TAGS: "key1*"}}, {TAGS: ["key2:audit"]}, True,
      id="forall-notlike-other"),
    P({"ForAnyValue:StringNotEquals": {TAGS: ["a"]}}, {TAGS: ["a", "z"]}, True, id="forany-not-equals"),
    P({"StringEquals": {TAGS: "b"}}, {TAGS: ["a", "b"]}, True, id="plain-operator-multivalued-any"),
    P({"StringEquals": {REGION: "us-east-1"}, "Bool": {"aws:SecureTransport": "true"}},
      {REGION: "us-east-1", "aws:SecureTransport": False}, False, id="operators-and"),
    P({"StringEquals": {REGION: "us-east-1", "aws:PrincipalAccount": ACCT}}, {REGION: "us-east-1"}, True,
      id="keys-and-derived-account"),
    P({"StringEquals": {REGION: "us-east-1", TEAM: "ml"}}, {REGION: "us-east-1"}, False,
      id="keys-and-missing"),
]
# fmt: on


@pytest.mark.parametrize(("condition", "context", "allowed"), CONDITION_CASES)
def test_condition_operators(condition: dict[str, Any], context: dict[str, Any], allowed: bool) -> None:
    request = AuthzRequest(USER, INVOKE, ENDPOINT, context)
    outcome = evaluate(request, [policy(allow("*", Condition=condition))]).outcome
    assert outcome is (ALLOW if allowed else IMPLICIT)


BOUNDARY = policy(allow("sagemaker:Invoke*"), deny("sagemaker:DeleteEndpoint"), name="boundary")
TO_ALICE = {"Effect": "Allow", "Principal": {"AWS": USER}, "Action": "sagemaker:*", "Resource": ENDPOINT}
TO_ACCOUNT = {**TO_ALICE, "Principal": {"AWS": ACCT}}
PB = PolicyType.PERMISSIONS_BOUNDARY
# fmt: off
BOUNDARY_CASES = [
    P([allow("*")], [], INVOKE, ALLOW, None, id="boundary-allows"),
    P([allow("*")], [], "sagemaker:UpdateEndpoint", IMPLICIT, PB, id="boundary-limits"),
    P([allow("*")], [], "sagemaker:DeleteEndpoint", EXPLICIT, PB, id="boundary-deny"),
    P([], [], INVOKE, IMPLICIT, PolicyType.IDENTITY, id="boundary-never-grants"),
    P([], [TO_ALICE], "sagemaker:UpdateEndpoint", ALLOW, None, id="resource-policy-naming-user-bypasses"),
    P([allow("*")], [TO_ACCOUNT], "sagemaker:UpdateEndpoint", IMPLICIT, PB, id="naming-account-does-not"),
]
# fmt: on


@pytest.mark.parametrize(("identity", "resource", "action", "expected", "blamed"), BOUNDARY_CASES)
def test_permissions_boundary(
    identity: list[Any], resource: list[Any], action: str, expected: Outcome, blamed: Any
) -> None:
    identity_policies = [policy(*identity)] if identity else []
    resource_policies = [policy(s, kind=PolicyKind.RESOURCE) for s in resource]
    request = AuthzRequest(USER, action, ENDPOINT)
    decision = evaluate(request, identity_policies, resource_policies, permissions_boundary=BOUNDARY)
    assert decision.outcome is expected
    assert blamed is None or decision.policy_type is blamed


def grant(principal: Any, effect: str = "Allow", **extra: Any) -> dict[str, Any]:
    """A Lambda function policy statement; principal None leaves Principal out (for NotPrincipal)."""
    statement = {"Effect": effect, "Action": "lambda:InvokeFunction", "Resource": FUNCTION, **extra}
    return statement if principal is None else {**statement, "Principal": principal}


S3 = "s3.amazonaws.com"
ROOT = f"arn:aws:iam::{ACCT}:root"
SOURCE = {"StringEquals": {"aws:SourceAccount": ACCT}}
# fmt: off
RESOURCE_POLICY_CASES = [
    P(USER, None, [], grant({"AWS": USER}), ALLOW, id="same-account-resource-allow"),
    P("", S3, [], grant({"Service": S3}), ALLOW, id="service-principal"),
    P("", "sns.amazonaws.com", [], grant({"Service": S3}), IMPLICIT, id="service-principal-other-service"),
    P(USER, None, [allow("*")], grant({"AWS": USER}, "Deny"), EXPLICIT, id="resource-policy-deny"),
    P(USER, None, [], grant({"AWS": BOB}), IMPLICIT, id="other-principal-named"),
    P(USER, None, [], grant({"AWS": ACCT}), IMPLICIT, id="account-principal-needs-identity"),
    P(USER, None, [allow("lambda:*")], grant({"AWS": ROOT}), ALLOW, id="account-root-plus-identity"),
    P(FOREIGN, None, [allow("lambda:*")], None, IMPLICIT, id="cross-account-needs-resource-policy"),
    P(FOREIGN, None, [], grant({"AWS": FOREIGN}), IMPLICIT, id="cross-account-needs-identity"),
    P(FOREIGN, None, [allow("lambda:*")], grant({"AWS": OTHER}), ALLOW, id="cross-account-both-allow"),
    P(SESSION, None, [], grant({"AWS": f"arn:aws:iam::{ACCT}:role/ml/trainer"}), ALLOW,
      id="role-covers-session"),
    P(BOB, None, [allow("*")], grant(None, "Deny", NotPrincipal={"AWS": USER}), EXPLICIT,
      id="notprincipal-denies"),
    P(USER, None, [allow("*")], grant(None, "Deny", NotPrincipal={"AWS": USER}), ALLOW,
      id="notprincipal-spares"),
    P(USER, None, [allow("*")], grant(None, "Deny", NotPrincipal={"AWS": ACCT}), EXPLICIT,
      id="notprincipal-account-does-not-exempt-users"),
    P(SESSION, None, [allow("*")], grant(None, "Deny", NotPrincipal={"AWS": ROLE_ARN}), EXPLICIT,
      id="notprincipal-role-does-not-exempt-session"),
    P("", S3, [], grant("*", Condition=SOURCE), ALLOW, id="anyone-with-source-account"),
]
# fmt: on


@pytest.mark.parametrize(("principal", "service", "identity", "statement", "expected"), RESOURCE_POLICY_CASES)
def test_resource_policies(
    principal: str, service: Any, identity: list[Any], statement: Any, expected: Outcome
) -> None:
    resource_policies = [policy(statement, kind=PolicyKind.RESOURCE)] if statement else []
    request = AuthzRequest(principal, "lambda:InvokeFunction", FUNCTION, {"aws:SourceAccount": ACCT}, service)
    identity_policies = [policy(*identity)] if identity else []
    assert evaluate(request, identity_policies, resource_policies).outcome is expected


LAMBDA = "lambda.amazonaws.com"
# fmt: off
TRUST_CASES = [
    P("*", USER, None, True, ALLOW, id="anyone"),
    P({"AWS": USER}, USER, None, True, ALLOW, id="exact-user"),
    P({"AWS": [BOB, ACCT]}, USER, None, True, IMPLICIT, id="account-id-delegates-to-identity"),
    P({"AWS": f"arn:aws:iam::{OTHER}:root"}, USER, None, False, IMPLICIT, id="other-account-root"),
    P({"Service": LAMBDA}, "", LAMBDA, True, ALLOW, id="service"),
    P({"Service": LAMBDA}, USER, None, False, IMPLICIT, id="service-not-user"),
    P({"AWS": ROLE_ARN}, SESSION, None, True, ALLOW, id="role-session"),
    P({"AWS": f"arn:aws:iam::{ACCT}:role/other"}, SESSION, None, False, IMPLICIT, id="other-role"),
]
# fmt: on


@pytest.mark.parametrize(("principal", "caller", "service", "matches", "assume"), TRUST_CASES)
def test_trust_policies(principal: Any, caller: str, service: Any, matches: bool, assume: Outcome) -> None:
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    trust = policy(statement, kind=PolicyKind.TRUST)
    assert principal_matches(trust.statements[0], caller, service=service) is matches
    # Same account: the trust policy alone decides, unless it only names the account.
    request = AuthzRequest(caller, "sts:AssumeRole", f"arn:aws:iam::{ACCT}:role/target", service=service)
    assert evaluate(request, [], [trust]).outcome is assume


def test_identity_statement_names_no_principal() -> None:
    assert principal_matches(policy(allow("*")).statements[0], USER) is False


HEAD = f"User: {SESSION} is not authorized to perform: {INVOKE} on resource: {ENDPOINT}"
DENY_ALL = {**TO_ALICE, "Effect": "Deny", "Principal": "*"}
# fmt: off
MESSAGE_CASES = [
    P([], [], None, f"{HEAD} because no identity-based policy allows the {INVOKE} action", id="implicit"),
    P([deny("sagemaker:*")], [], None, f"{HEAD} with an explicit deny in an identity-based policy",
      id="explicit"),
    P([allow("*")], [DENY_ALL], None, f"{HEAD} with an explicit deny in a resource-based policy",
      id="explicit-resource"),
    P([allow("*")], [], policy(allow("s3:*")),
      f"{HEAD} because no permissions boundary allows the {INVOKE} action",
      id="implicit-boundary"),
]
# fmt: on


@pytest.mark.parametrize(("identity", "resource", "boundary", "message"), MESSAGE_CASES)
def test_access_denied_messages(
    identity: list[Any], resource: list[Any], boundary: Any, message: str
) -> None:
    request = AuthzRequest(SESSION, INVOKE, ENDPOINT)
    identity_policies = [policy(*identity)] if identity else []
    resource_policies = [policy(s) for s in resource]
    decision = evaluate(request, identity_policies, resource_policies, permissions_boundary=boundary)
    assert decision.message(SESSION, request.action, request.resource) == message


def test_decision_cites_policy_and_sid() -> None:
    guard = f"arn:aws:iam::{ACCT}:policy/guard"
    denier = policy({**deny("sagemaker:Delete*"), "Sid": "NoDelete"}, name=guard)
    decision = evaluate(
        AuthzRequest(USER, "sagemaker:DeleteEndpoint", ENDPOINT), [policy(allow("*")), denier]
    )
    assert decision.matched_statement is not None
    assert (decision.matched_statement.policy_name, decision.matched_statement.sid) == (guard, "NoDelete")
    allowed = evaluate(AuthzRequest(USER, INVOKE, ENDPOINT), [policy(allow("*"))])
    assert allowed.allowed and allowed.matched_statement is not None
    with pytest.raises(ValueError, match="allowed"):
        allowed.message(USER, INVOKE, ENDPOINT)


STMT = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}


def cond(condition: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": {**STMT, "Condition": condition}}


VENDOR = "prefaced by a vendor"
BAD_TYPE = "Invalid Condition type"
# fmt: off
MALFORMED_CASES = [
    P("{not json", None, "Syntax errors in policy.", id="invalid-json"),
    P("[1, 2]", None, "Syntax errors in policy.", id="not-an-object"),
    P({"Version": "2012-10-17", "Statement": [STMT], "Extra": 1}, None, "Unknown field Extra",
      id="unknown-top-key"),
    P({"Version": "2020-01-01", "Statement": [STMT]}, None, "Version must be 2012-10-17", id="bad-version"),
    P({"Version": "2012-10-17"}, None, "Missing required field Statement", id="missing-statement"),
    P({"Statement": []}, None, "non-empty list", id="empty-statement-list"),
    P({"Statement": {"Action": "s3:*", "Resource": "*"}}, None, "Missing required field Effect",
      id="no-effect"),
    P({"Statement": {**STMT, "Effect": "allow"}}, None, "Invalid effect: allow", id="effect-wrong-case"),
    P({"Statement": {**STMT, "NotAction": "s3:Put*"}}, None, "both Action and NotAction",
      id="action-and-not"),
    P({"Statement": {"Effect": "Allow", "Resource": "*"}}, None, "must contain actions", id="no-action"),
    P({"Statement": {"Effect": "Allow", "Action": "s3:*"}}, None, "must contain resources", id="no-resource"),
    P({"Statement": {**STMT, "NotResource": "*"}}, None, "both Resource and NotResource",
      id="resource-and-not"),
    P({"Statement": {**STMT, "Action": 7}}, None, "Action must be a string or a list",
      id="action-not-string"),
    P({"Statement": {**STMT, "Resource": {"a": 1}}}, None, "Resource must be a string or a list",
      id="resource-dict"),
    P({"Statement": {**STMT, "Action": "GetObject"}}, None, VENDOR, id="action-without-vendor"),
    P({"Statement": {**STMT, "Resource": "bucket/key"}}, None, "must be in ARN format",
      id="resource-not-arn"),
    P({"Statement": {**STMT, "Shape": "round"}}, None, "Unknown field Shape", id="unknown-statement-key"),
    P({"Statement": [{**STMT, "Sid": "A"}, {**STMT, "Sid": "A"}]}, None, "must be unique",
      id="duplicate-sid"),
    P(cond({"StringEqualz": {"aws:username": "a"}}), None, f"{BAD_TYPE}: StringEqualz",
      id="unknown-operator"),
    P(cond({"ForSomeValues:StringEquals": {"aws:TagKeys": "a"}}), None, BAD_TYPE, id="unknown-set-operator"),
    P(cond({"NullIfExists": {"aws:username": "true"}}), None, BAD_TYPE, id="null-if-exists"),
    P(cond({"NumericLessThan": {"s3:max-keys": "ten"}}), None, "must be a number", id="numeric-value"),
    P(cond({"DateLessThan": {"aws:CurrentTime": "someday"}}), None, "must be a date", id="date-value"),
    P(cond({"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}), None, "IP address", id="bad-cidr"),
    P(cond({"Bool": {"aws:SecureTransport": "yes"}}), None, "true or false", id="bool-value"),
    P(cond({"Null": {"aws:username": "maybe"}}), None, "true or false", id="null-value"),
    P(cond({"BinaryEquals": {"x:Blob": "not base64!"}}), None, "base64", id="binary-value"),
    P(cond({"StringEquals": {"aws:username": {"a": 1}}}), None, "strings, numbers or booleans",
      id="value-object"),
    P(cond({"StringEquals": {"username": "a"}}), None, VENDOR, id="condition-key-without-vendor"),
    P(cond(["StringEquals"]), None, "Condition must be an object", id="condition-list"),
    P(cond({"StringLike": {"s3:prefix": "${}"}}), None, "Invalid policy variable", id="empty-variable"),
    P({"Statement": {**STMT, "Principal": "*"}}, PolicyKind.IDENTITY, "should not specify a principal",
      id="identity-with-principal"),
    P({"Statement": STMT}, PolicyKind.RESOURCE, "Missing required field Principal",
      id="resource-no-principal"),
    P({"Statement": {**STMT, "Principal": {"AWS": "*"}}}, PolicyKind.TRUST, "Has prohibited field Resource",
      id="trust-with-resource"),
    P({"Statement": {"Effect": "Deny", "Action": "sts:AssumeRole", "NotPrincipal": "*"}}, PolicyKind.TRUST,
      "Has prohibited field NotPrincipal", id="trust-with-notprincipal"),
    P({"Statement": {**STMT, "Principal": {"Group": "x"}}}, None, "Invalid principal in policy",
      id="bad-principal"),
    P({"Statement": {**STMT, "Principal": {"AWS": "bob"}}}, None, "Invalid principal in policy",
      id="bad-aws-id"),
]
# fmt: on


@pytest.mark.parametrize(("document", "kind", "message"), MALFORMED_CASES)
def test_malformed_documents(document: Any, kind: PolicyKind | None, message: str) -> None:
    with pytest.raises(MalformedPolicyDocument) as caught:
        parse_policy(document, kind=kind)
    assert message in str(caught.value)


def test_accepts_json_text_single_statement_and_lists() -> None:
    text = (
        '{"Statement": {"Effect": "Allow", "Action": ["s3:Get*", "s3:List*"], "Resource": "arn:aws:s3:::*"}}'
    )
    parsed = parse_policy(text, name="inline")
    assert parsed.version == "2008-10-17" and parsed.statements[0].action == ("s3:Get*", "s3:List*")
    assert evaluate(AuthzRequest(USER, "s3:ListBucket", "arn:aws:s3:::d/x"), [parsed]).allowed
