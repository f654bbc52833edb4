"""The policy-semantics table: session policies, permissions boundaries, iam:PassRole conditions, S3
condition keys, explicit deny, NotAction/NotResource — each case a pure ``evaluate`` call, each with the
AWS rule it follows cited in the comment above it.

Sources (IAM User Guide pages unless noted):
  [EL] reference_policies_evaluation-logic      [SP] access_policies.html#policies_session
  [PB] access_policies_boundaries               [PR] id_roles_use_passrole
  [CK] reference_policies_iam-condition-keys (iam:PassedToService, iam:AssociatedResourceArn)
  [CO] reference_policies_elements_condition_operators (IfExists, Null, multiple values)
  [S3] Amazon S3 User Guide, amazon-s3-policy-keys (s3:prefix, s3:delimiter, s3:max-keys, s3:x-amz-acl)
  [NA] reference_policies_elements_notaction    [NR] reference_policies_elements_notresource
  [RS] reference_policies_elements_resource (wildcards, variables)   [AC] ..._elements_action
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from kennel.cloud.policy.evaluate import AuthzRequest, Outcome, PolicyType, evaluate
from kennel.cloud.policy.policy import Policy, PolicyKind, parse_policy

ACCT, OTHER = "111122223333", "444455556666"
USER = f"arn:aws:iam::{ACCT}:user/alice"
ROLE = f"arn:aws:iam::{ACCT}:role/admin"
SESSION = f"arn:aws:sts::{ACCT}:assumed-role/admin/s1"
FOREIGN_SESSION = f"arn:aws:sts::{OTHER}:assumed-role/admin/s1"
BUCKET, OBJECT = "arn:aws:s3:::data", "arn:aws:s3:::data/public/a.csv"
FN = f"arn:aws:lambda:us-east-1:{ACCT}:function"
PASSED = f"arn:aws:iam::{ACCT}:role/service-role/exec"
PASS = "iam:PassRole"
LAMBDA_SVC, SM_SVC = "lambda.amazonaws.com", "sagemaker.amazonaws.com"
ALLOW, EXPLICIT, IMPLICIT = Outcome.ALLOW, Outcome.EXPLICIT_DENY, Outcome.IMPLICIT_DENY
IDENTITY, RESOURCE = PolicyType.IDENTITY, PolicyType.RESOURCE
BOUNDARY, SESSION_POLICY = PolicyType.PERMISSIONS_BOUNDARY, PolicyType.SESSION


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def to(principal: str | dict, statement: dict[str, Any]) -> dict[str, Any]:
    """A resource-policy statement naming ``principal`` (an ARN, an account id or a Principal object)."""
    named = principal if isinstance(principal, dict) else {"AWS": principal}
    return {**statement, "Principal": named}


ADMIN = [allow("*")]
# AmazonS3ReadOnlyAccess, as a managed session policy.
S3_READ_ONLY = [allow(["s3:Get*", "s3:List*", "s3:Describe*"])]
PASS_TO_LAMBDA = allow(PASS, PASSED, Condition={"StringEquals": {"iam:PassedToService": LAMBDA_SVC}})
FUNCTION_ONLY = allow(
    PASS, PASSED, Condition={"StringEquals": {"iam:PassedToService": LAMBDA_SVC},
                             "ArnLike": {"iam:AssociatedResourceArn": f"{FN}:train-*"}},
)  # fmt: skip
PUBLIC_LIST = allow("s3:ListBucket", BUCKET, Condition={"StringLike": {"s3:prefix": "public/*"}})
TO_LAMBDA_OR_SM = {"StringEquals": {"iam:PassedToService": [LAMBDA_SVC, SM_SVC]}}
IF_EXISTS_LAMBDA = {"StringEqualsIfExists": {"iam:PassedToService": LAMBDA_SVC}}
NOT_SM = {"StringNotEquals": {"iam:PassedToService": SM_SVC}}
SERVICE_ROLES = f"arn:aws:iam::{ACCT}:role/service-role/*"
ROOT_OR_HOME = {"StringEquals": {"s3:prefix": ["", "home/"]}}
MAX_10 = {"NumericLessThanEquals": {"s3:max-keys": "10"}}
PUBLIC_READ = {"StringEquals": {"s3:x-amz-acl": "public-read"}}
NO_ACL_DENY = [allow("s3:*"), deny("s3:PutObject", Condition=PUBLIC_READ)]
ONLY_PUBLIC = {"StringNotLike": {"s3:prefix": "public/*"}}
DATA = ["arn:aws:s3:::data", "arn:aws:s3:::data/*"]
OUTSIDE_DENIED = [allow("s3:*"), {"Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::data/*"]}]


@dataclass(frozen=True)
class Case:
    id: str
    action: str
    resource: str
    expect: Outcome
    kind: PolicyType | None = None  # the policy type the decision names, where it matters
    identity: list[dict[str, Any]] = field(default_factory=list)
    resource_policy: list[dict[str, Any]] = field(default_factory=list)
    boundary: list[dict[str, Any]] | None = None
    session: list[list[dict[str, Any]]] | None = None  # one statement list per session policy
    principal: str = USER
    context: dict[str, Any] = field(default_factory=dict)


def _policy(statements: list[dict[str, Any]], name: str, kind: PolicyKind) -> Policy:
    return parse_policy({"Version": "2012-10-17", "Statement": statements}, name=name, kind=kind)


# fmt: off
CASES = [
    # ----- session policies --------------------------------------------------------------------------
    # [SP] a session's permissions are the intersection of the role's identity policies and the session
    # policies: what both allow is allowed.
    Case("sp-intersection-allows", "s3:ListAllMyBuckets", "*", ALLOW, principal=SESSION,
         identity=ADMIN, session=[[allow("s3:ListAllMyBuckets")]]),
    # [SP] what the role allows but the session policy does not is implicitly denied by the session policy.
    Case("sp-limits-admin-iam", "iam:ListUsers", "*", IMPLICIT, SESSION_POLICY, principal=SESSION,
         identity=ADMIN, session=[[allow("s3:ListAllMyBuckets")]]),
    Case("sp-limits-admin-s3-write", "s3:CreateBucket", BUCKET, IMPLICIT, SESSION_POLICY,
         principal=SESSION, identity=ADMIN, session=[[allow("s3:ListAllMyBuckets")]]),
    # [SP] "You cannot use session policies to grant more permissions than those allowed by the
    # identity-based policy of the role": a session policy alone grants nothing.
    Case("sp-alone-does-not-grant", "iam:ListUsers", "*", IMPLICIT, IDENTITY, principal=SESSION,
         identity=[allow("s3:*")], session=[ADMIN]),
    Case("sp-no-identity-policies", "s3:GetObject", OBJECT, IMPLICIT, IDENTITY, principal=SESSION,
         session=[S3_READ_ONLY]),
    # [EL] an explicit deny in any policy, session policies included, overrides every allow.
    Case("sp-explicit-deny", "s3:GetObject", OBJECT, EXPLICIT, SESSION_POLICY, principal=SESSION,
         identity=ADMIN, session=[[allow("*"), deny("s3:GetObject")]]),
    # [SP] managed session policies (PolicyArns) limit the session like an inline one.
    Case("sp-managed-read-allowed", "s3:GetObject", OBJECT, ALLOW, principal=SESSION,
         identity=ADMIN, session=[S3_READ_ONLY]),
    Case("sp-managed-write-denied", "s3:PutObject", OBJECT, IMPLICIT, SESSION_POLICY, principal=SESSION,
         identity=ADMIN, session=[S3_READ_ONLY]),
    Case("sp-managed-list-buckets", "s3:ListAllMyBuckets", "*", ALLOW, principal=SESSION,
         identity=ADMIN, session=[S3_READ_ONLY]),
    # [SP] inline and managed session policies together are the session policy: an allow in either.
    Case("sp-inline-plus-managed-inline-part", "iam:GetUser", "*", ALLOW, principal=SESSION,
         identity=ADMIN, session=[[allow("iam:GetUser")], S3_READ_ONLY]),
    Case("sp-inline-plus-managed-managed-part", "s3:GetObject", OBJECT, ALLOW, principal=SESSION,
         identity=ADMIN, session=[[allow("iam:GetUser")], S3_READ_ONLY]),
    # [SP] a deny in one session policy wins over an allow in another.
    Case("sp-deny-in-managed-beats-inline", "s3:GetObject", OBJECT, EXPLICIT, SESSION_POLICY,
         principal=SESSION, identity=ADMIN, session=[[allow("s3:*")], [deny("s3:GetObject")]]),
    # [SP] session policies that allow nothing leave the session with nothing (fail closed).
    Case("sp-empty-set-denies", "s3:GetObject", OBJECT, IMPLICIT, SESSION_POLICY, principal=SESSION,
         identity=ADMIN, session=[]),
    # [EL] no session policy passed: the role's permissions apply unchanged.
    Case("sp-none-passed", "iam:ListUsers", "*", ALLOW, principal=SESSION, identity=ADMIN),
    # [SP] conditions in session policies hold per request like any other.
    Case("sp-condition-false", "s3:GetObject", OBJECT, IMPLICIT, SESSION_POLICY, principal=SESSION,
         identity=ADMIN, context={"aws:SourceIp": "192.0.2.9"},
         session=[[allow("s3:*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})]]),
    Case("sp-condition-true", "s3:GetObject", OBJECT, ALLOW, principal=SESSION,
         identity=ADMIN, context={"aws:SourceIp": "10.1.2.3"},
         session=[[allow("s3:*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})]]),
    # [SP] a resource policy naming the session ARN adds its permissions after the session policy:
    # "the intersection of the identity-based policy and the session policy, plus the resource policy".
    Case("sp-resource-names-session", "s3:GetObject", OBJECT, ALLOW, RESOURCE, principal=SESSION,
         session=[[allow("iam:GetUser")]], resource_policy=[to(SESSION, allow("s3:GetObject", OBJECT))]),
    # [SP] a resource policy naming the role ARN is added before the session: the session policy limits it.
    Case("sp-resource-names-role-limited", "s3:GetObject", OBJECT, IMPLICIT, SESSION_POLICY,
         principal=SESSION, session=[[allow("iam:GetUser")]],
         resource_policy=[to(ROLE, allow("s3:GetObject", OBJECT))]),
    Case("sp-resource-names-role-within", "s3:GetObject", OBJECT, ALLOW, principal=SESSION,
         session=[S3_READ_ONLY], resource_policy=[to(ROLE, allow("s3:GetObject", OBJECT))]),
    # [EL] an explicit deny in the session policy wins even over a resource policy naming the session.
    Case("sp-deny-beats-resource-grant", "s3:GetObject", OBJECT, EXPLICIT, SESSION_POLICY,
         principal=SESSION, session=[[deny("s3:*")]],
         resource_policy=[to(SESSION, allow("s3:GetObject", OBJECT))]),
    # [EL] across accounts the caller's side (identity ∩ session) must allow as well as the resource.
    Case("sp-cross-account-limited", "s3:GetObject", OBJECT, IMPLICIT, SESSION_POLICY,
         principal=FOREIGN_SESSION, identity=ADMIN, session=[[allow("iam:GetUser")]],
         context={"aws:ResourceAccount": ACCT},
         resource_policy=[to(FOREIGN_SESSION, allow("s3:GetObject", OBJECT))]),
    # [EL] boundary and session policy are both limits: each must allow.
    Case("sp-and-boundary-both-allow", "s3:GetObject", OBJECT, ALLOW, principal=SESSION,
         identity=ADMIN, boundary=[allow("s3:*")], session=[S3_READ_ONLY]),
    Case("sp-allows-boundary-not", "iam:GetUser", "*", IMPLICIT, BOUNDARY, principal=SESSION,
         identity=ADMIN, boundary=[allow("s3:*")], session=[ADMIN]),
    Case("boundary-allows-sp-not", "s3:PutObject", OBJECT, IMPLICIT, SESSION_POLICY, principal=SESSION,
         identity=ADMIN, boundary=[allow("s3:*")], session=[S3_READ_ONLY]),

    # ----- permissions boundaries ----------------------------------------------------------------------
    # [PB] effective permissions are the intersection of identity policies and the boundary.
    Case("pb-intersection", "s3:GetObject", OBJECT, ALLOW, identity=ADMIN, boundary=[allow("s3:*")]),
    Case("pb-outside", "iam:CreateUser", "*", IMPLICIT, BOUNDARY, identity=ADMIN, boundary=[allow("s3:*")]),
    # [PB] "a permissions boundary does not grant permissions on its own".
    Case("pb-does-not-grant", "s3:GetObject", OBJECT, IMPLICIT, IDENTITY, boundary=[allow("*")]),
    # [EL] an explicit deny in the boundary wins.
    Case("pb-explicit-deny", "s3:DeleteObject", OBJECT, EXPLICIT, BOUNDARY, identity=ADMIN,
         boundary=[allow("*"), deny("s3:Delete*")]),
    # [PB] + [NA] a boundary written with NotAction allows everything but the listed actions.
    Case("pb-notaction", "iam:CreateUser", "*", IMPLICIT, BOUNDARY, identity=ADMIN,
         boundary=[{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]),
    Case("pb-notaction-others", "lambda:InvokeFunction", f"{FN}:f", ALLOW, identity=ADMIN,
         boundary=[{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]),
    # [PB] within an account a resource policy naming the IAM user ARN is not limited by the boundary.
    Case("pb-resource-names-user", "s3:GetObject", OBJECT, ALLOW, RESOURCE, boundary=[allow("iam:*")],
         resource_policy=[to(USER, allow("s3:GetObject", OBJECT))]),
    # [PB] one naming the role ARN is limited by the boundary for the role's sessions ...
    Case("pb-resource-names-role", "s3:GetObject", OBJECT, IMPLICIT, BOUNDARY, principal=SESSION,
         boundary=[allow("iam:*")], resource_policy=[to(ROLE, allow("s3:GetObject", OBJECT))]),
    # [PB] ... one naming the session ARN is not.
    Case("pb-resource-names-session", "s3:GetObject", OBJECT, ALLOW, RESOURCE, principal=SESSION,
         boundary=[allow("iam:*")], resource_policy=[to(SESSION, allow("s3:GetObject", OBJECT))]),
    # [EL] a resource policy naming only the account delegates to the account's identity policies, which
    # the boundary limits.
    Case("pb-resource-names-account", "s3:GetObject", OBJECT, IMPLICIT, BOUNDARY, identity=ADMIN,
         boundary=[allow("iam:*")], resource_policy=[to(ACCT, allow("s3:GetObject", OBJECT))]),

    # ----- iam:PassRole and its context keys -------------------------------------------------------------
    # [PR] + [CK] iam:PassedToService names the service the role is passed to.
    Case("pr-passed-to-service-match", PASS, PASSED, ALLOW, identity=[PASS_TO_LAMBDA],
         context={"iam:PassedToService": LAMBDA_SVC}),
    Case("pr-passed-to-other-service", PASS, PASSED, IMPLICIT, IDENTITY, identity=[PASS_TO_LAMBDA],
         context={"iam:PassedToService": SM_SVC}),
    # [CO] multiple values for one key are ORed.
    Case("pr-service-list-or", PASS, PASSED, ALLOW, context={"iam:PassedToService": SM_SVC},
         identity=[allow(PASS, PASSED, Condition=TO_LAMBDA_OR_SM)]),
    # [CO] a key missing from the request makes the condition false ...
    Case("pr-key-missing", PASS, PASSED, IMPLICIT, IDENTITY, identity=[PASS_TO_LAMBDA]),
    # [CO] ... unless the operator is ...IfExists.
    Case("pr-if-exists-missing", PASS, PASSED, ALLOW,
         identity=[allow(PASS, PASSED, Condition=IF_EXISTS_LAMBDA)]),
    # [CK] iam:AssociatedResourceArn is the resource the role will be used with (ArnLike wildcards).
    Case("pr-associated-match", PASS, PASSED, ALLOW, identity=[FUNCTION_ONLY],
         context={"iam:PassedToService": LAMBDA_SVC, "iam:AssociatedResourceArn": f"{FN}:train-1"}),
    Case("pr-associated-other", PASS, PASSED, IMPLICIT, IDENTITY, identity=[FUNCTION_ONLY],
         context={"iam:PassedToService": LAMBDA_SVC, "iam:AssociatedResourceArn": f"{FN}:serve-1"}),
    # [CO] several keys in one operator, or several operators, are ANDed.
    Case("pr-and-of-keys", PASS, PASSED, IMPLICIT, IDENTITY, identity=[FUNCTION_ONLY],
         context={"iam:PassedToService": SM_SVC, "iam:AssociatedResourceArn": f"{FN}:train-1"}),
    # [EL] a Deny of PassRole to any service but SageMaker (StringNotEquals) denies a pass to Lambda ...
    Case("pr-deny-not-sagemaker", PASS, PASSED, EXPLICIT, IDENTITY,
         context={"iam:PassedToService": LAMBDA_SVC}, identity=[allow(PASS), deny(PASS, Condition=NOT_SM)]),
    # [EL] ... and spares the pass to SageMaker.
    Case("pr-deny-spares-sagemaker", PASS, PASSED, ALLOW, context={"iam:PassedToService": SM_SVC},
         identity=[allow(PASS), deny(PASS, Condition=NOT_SM)]),
    # [RS] the Resource is the role ARN, path included: a path wildcard covers roles under it only.
    Case("pr-role-path-wildcard", PASS, PASSED, ALLOW, identity=[allow(PASS, SERVICE_ROLES)]),
    Case("pr-role-other-path", PASS, ROLE, IMPLICIT, IDENTITY, identity=[allow(PASS, SERVICE_ROLES)]),
    # [NA] "NotAction": "iam:*" (PowerUserAccess) grants everything but IAM, so not iam:PassRole.
    Case("pr-poweruser-no-passrole", PASS, PASSED, IMPLICIT, IDENTITY,
         identity=[{"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}]),
    # [AC] action wildcards and case-insensitive names cover iam:PassRole.
    Case("pr-action-wildcard", PASS, PASSED, ALLOW, identity=[allow("IAM:pass*")]),
    # [SP] a session policy limits PassRole like anything else.
    Case("pr-session-limits-pass", PASS, PASSED, IMPLICIT, SESSION_POLICY, principal=SESSION,
         identity=ADMIN, session=[S3_READ_ONLY], context={"iam:PassedToService": LAMBDA_SVC}),

    # ----- S3 condition keys ---------------------------------------------------------------------------
    # [S3] s3:prefix with StringLike limits ListBucket to a folder.
    Case("s3-prefix-inside", "s3:ListBucket", BUCKET, ALLOW, identity=[PUBLIC_LIST],
         context={"s3:prefix": "public/reports/"}),
    Case("s3-prefix-outside", "s3:ListBucket", BUCKET, IMPLICIT, IDENTITY, identity=[PUBLIC_LIST],
         context={"s3:prefix": "secret/"}),
    # [CO] a listing without a prefix has no s3:prefix key: StringLike is false.
    Case("s3-prefix-absent", "s3:ListBucket", BUCKET, IMPLICIT, IDENTITY, identity=[PUBLIC_LIST]),
    # [S3] the documented root-listing idiom: "s3:prefix": ["", "home/"] with StringEquals.
    Case("s3-prefix-root-idiom", "s3:ListBucket", BUCKET, ALLOW, context={"s3:prefix": ""},
         identity=[allow("s3:ListBucket", BUCKET, Condition=ROOT_OR_HOME)]),
    # [CO] Null: "true" holds when the key is absent.
    Case("s3-null-true-absent", "s3:ListBucket", BUCKET, ALLOW,
         identity=[allow("s3:ListBucket", BUCKET, Condition={"Null": {"s3:prefix": "true"}})]),
    Case("s3-null-true-present", "s3:ListBucket", BUCKET, IMPLICIT, IDENTITY, context={"s3:prefix": "a/"},
         identity=[allow("s3:ListBucket", BUCKET, Condition={"Null": {"s3:prefix": "true"}})]),
    # [S3] s3:delimiter.
    Case("s3-delimiter", "s3:ListBucket", BUCKET, ALLOW, context={"s3:delimiter": "/"},
         identity=[allow("s3:ListBucket", BUCKET, Condition={"StringEquals": {"s3:delimiter": "/"}})]),
    # [S3] s3:max-keys with a numeric operator.
    Case("s3-max-keys-under", "s3:ListBucket", BUCKET, ALLOW, context={"s3:max-keys": "5"},
         identity=[allow("s3:ListBucket", BUCKET, Condition=MAX_10)]),
    Case("s3-max-keys-over", "s3:ListBucket", BUCKET, IMPLICIT, IDENTITY, context={"s3:max-keys": "50"},
         identity=[allow("s3:ListBucket", BUCKET, Condition=MAX_10)]),
    # [S3] + [EL] deny public ACLs on upload with s3:x-amz-acl.
    Case("s3-deny-public-acl", "s3:PutObject", OBJECT, EXPLICIT, IDENTITY,
         context={"s3:x-amz-acl": "public-read"}, identity=NO_ACL_DENY),
    Case("s3-private-acl-ok", "s3:PutObject", OBJECT, ALLOW, context={"s3:x-amz-acl": "private"},
         identity=NO_ACL_DENY),
    # [EL] + [S3] a Deny with StringNotLike refuses listings outside public/ even under s3:*.
    Case("s3-deny-notlike", "s3:ListBucket", BUCKET, EXPLICIT, IDENTITY, context={"s3:prefix": "secret/"},
         identity=[allow("s3:*"), deny("s3:ListBucket", BUCKET, Condition=ONLY_PUBLIC)]),
    # [RS] ${aws:username} in the object ARN: each user's home folder.
    Case("s3-home-own", "s3:GetObject", "arn:aws:s3:::data/home/alice/x", ALLOW,
         identity=[allow("s3:GetObject", "arn:aws:s3:::data/home/${aws:username}/*")]),
    Case("s3-home-other", "s3:GetObject", "arn:aws:s3:::data/home/bob/x", IMPLICIT, IDENTITY,
         identity=[allow("s3:GetObject", "arn:aws:s3:::data/home/${aws:username}/*")]),
    # [RS] "*" in an S3 object ARN spans "/" ("?" is one character).
    Case("s3-star-spans-slash", "s3:GetObject", "arn:aws:s3:::data/public/a/b/c", ALLOW,
         identity=[allow("s3:GetObject", "arn:aws:s3:::data/public/*")]),
    Case("s3-qmark-one-char", "s3:GetObject", "arn:aws:s3:::data/v10", IMPLICIT, IDENTITY,
         identity=[allow("s3:GetObject", "arn:aws:s3:::data/v?")]),

    # ----- explicit deny, NotAction, NotResource -------------------------------------------------------
    # [EL] an explicit deny in an identity policy overrides an allow in a resource policy ...
    Case("ed-identity-deny-beats-resource", "s3:GetObject", OBJECT, EXPLICIT, IDENTITY,
         identity=[deny("s3:GetObject")], resource_policy=[to(USER, allow("s3:GetObject", OBJECT))]),
    # [EL] ... and one in a resource policy overrides an identity allow.
    Case("ed-resource-deny-beats-identity", "s3:GetObject", OBJECT, EXPLICIT, RESOURCE,
         identity=ADMIN, resource_policy=[to({"AWS": "*"}, deny("s3:GetObject", OBJECT))]),
    # [EL] a Deny whose condition does not hold does not apply.
    Case("ed-deny-condition-false", "s3:GetObject", OBJECT, ALLOW, context={"aws:SourceIp": "10.0.0.1"},
         identity=[allow("s3:*"), deny("s3:*", Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})]),
    # [EL] Deny statements never grant: only denies is an implicit deny.
    Case("ed-deny-never-grants", "iam:GetUser", "*", IMPLICIT, IDENTITY,
         identity=[{"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"}]),
    # [NA] NotAction with Deny denies every action not listed ...
    Case("na-deny-others", "s3:GetObject", OBJECT, EXPLICIT, IDENTITY,
         identity=[allow("*"), {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"}]),
    # [NA] ... and leaves the listed ones to the other statements.
    Case("na-deny-spares-listed", "iam:GetUser", "*", ALLOW,
         identity=[allow("*"), {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"}]),
    # [NR] NotResource with Allow grants every resource but the listed ones.
    Case("nr-allow-others", "s3:GetObject", "arn:aws:s3:::other/x", ALLOW,
         identity=[{"Effect": "Allow", "Action": "s3:*", "NotResource": DATA}]),
    Case("nr-allow-not-listed", "s3:GetObject", OBJECT, IMPLICIT, IDENTITY,
         identity=[{"Effect": "Allow", "Action": "s3:*", "NotResource": DATA}]),
    # [NR] NotResource with Deny: deny everything outside one bucket.
    Case("nr-deny-outside", "s3:GetObject", "arn:aws:s3:::other/x", EXPLICIT, IDENTITY,
         identity=OUTSIDE_DENIED),
    Case("nr-deny-spares-inside", "s3:GetObject", OBJECT, ALLOW,
         identity=OUTSIDE_DENIED),
    # [EL] across accounts an identity allow alone is not enough: the resource owner must allow too.
    Case("xa-needs-resource-policy", "s3:GetObject", OBJECT, IMPLICIT, RESOURCE, principal=FOREIGN_SESSION,
         identity=ADMIN, context={"aws:ResourceAccount": ACCT}),
    Case("xa-both-allow", "s3:GetObject", OBJECT, ALLOW, principal=FOREIGN_SESSION, identity=ADMIN,
         context={"aws:ResourceAccount": ACCT},
         resource_policy=[to(f"arn:aws:iam::{OTHER}:root", allow("s3:GetObject", OBJECT))]),
]
# fmt: on


def test_the_table_is_big_enough_and_ids_are_unique() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_policy_semantics(case: Case) -> None:
    identity = [_policy([s], f"identity{i}", PolicyKind.IDENTITY) for i, s in enumerate(case.identity)]
    resource = []
    if case.resource_policy:
        resource.append(_policy(case.resource_policy, "resource", PolicyKind.RESOURCE))
    boundary = _policy(case.boundary, "boundary", PolicyKind.IDENTITY) if case.boundary is not None else None
    session = (
        None
        if case.session is None
        else [_policy(s, f"session{i}", PolicyKind.IDENTITY) for i, s in enumerate(case.session)]
    )
    request = AuthzRequest(case.principal, case.action, case.resource, case.context)
    decision = evaluate(request, identity, resource, permissions_boundary=boundary, session_policies=session)
    assert decision.outcome is case.expect
    if case.kind is not None:
        assert decision.policy_type is case.kind


def test_denial_messages_name_the_session_policy() -> None:
    """AWS's AccessDenied text says which kind of policy denied ([EL], "AccessDenied error messages")."""
    admin = [_policy(ADMIN, "admin", PolicyKind.IDENTITY)]
    only_list = [_policy([allow("s3:ListAllMyBuckets")], "s", PolicyKind.IDENTITY)]
    implicit = evaluate(AuthzRequest(SESSION, "iam:ListUsers", "*"), admin, session_policies=only_list)
    assert implicit.message(SESSION, "iam:ListUsers", "*") == (
        f"User: {SESSION} is not authorized to perform: iam:ListUsers on resource: * "
        "because no session policy allows the iam:ListUsers action"
    )
    denying = [_policy([deny("iam:*")], "s", PolicyKind.IDENTITY)]
    explicit = evaluate(AuthzRequest(SESSION, "iam:ListUsers", "*"), admin, session_policies=denying)
    assert explicit.message(SESSION, "iam:ListUsers", "*").endswith(
        "with an explicit deny in a session policy"
    )
