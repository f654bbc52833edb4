"""The rules of S3 bucket policies (pure): what PutBucketPolicy accepts, and whether a policy is public.

A bucket policy is an IAM resource policy (parsed by ``kennel.cloud.policy.policy``, the one parser)
with S3's own limits on top: at most 20 KB, every statement names a principal, its actions are S3's,
and every resource is the bucket itself or an object in it (S3 refuses a policy that reaches any
other bucket with "Policy has invalid resource").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kennel.cloud.objectstore.operations import S3RequestError
from kennel.cloud.objectstore.store import object_arn
from kennel.cloud.policy.policy import MalformedPolicyDocument, Policy, PolicyKind, Statement, parse_policy

MAX_POLICY_BYTES = 20 * 1024  # "Bucket policies are limited to 20 KB in size" (S3 user guide)

# Condition keys that pin a grant to fixed callers or sources, after the S3 user guide's "The meaning of
# public": a policy granting everyone is still not public when it limits access to fixed values of one of
# these (the aws:Principal* keys fix the caller just as a named principal does).
_FIXING_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:SourceIp",
        "aws:SourceArn",
        "aws:SourceVpc",
        "aws:SourceVpce",
        "aws:SourceOwner",
        "aws:SourceAccount",
        "aws:userid",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:PrincipalOrgID",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
    )
)


def malformed(message: str) -> S3RequestError:
    return S3RequestError("MalformedPolicy", 400, message)


def check_bucket_policy(document: bytes, bucket: str) -> Policy:
    """The parsed policy PutBucketPolicy would keep for ``bucket``, or S3's refusal.

    The size is bounded before anything is parsed, and the parser bounds nesting before it decodes."""
    if not document.strip():
        raise S3RequestError("MissingRequestBodyError", 400, "Request Body is empty")
    if len(document) > MAX_POLICY_BYTES:
        raise malformed(
            f"The policy is {len(document)} bytes; bucket policies are limited to 20 KB ({MAX_POLICY_BYTES})."
        )
    try:
        text = document.decode("utf-8")  # JSON's own encoding detection would also take UTF-16 and -32
    except UnicodeDecodeError:
        raise malformed("This policy contains invalid Json") from None
    try:
        policy = parse_policy(text, name=f"{object_arn(bucket)} bucket policy", kind=PolicyKind.RESOURCE)
    except MalformedPolicyDocument as exc:
        message = str(exc)
        # The parser's words for text that is no JSON object; S3 words that its own way.
        invalid_json = message == "Syntax errors in policy."
        raise malformed("This policy contains invalid Json" if invalid_json else message) from None
    for statement in policy.statements:
        actions = statement.action if statement.action is not None else statement.not_action or ()
        if not all(_is_s3_action(action) for action in actions):
            raise malformed("Policy has invalid action")
        resources = statement.resource if statement.resource is not None else statement.not_resource or ()
        if not all(_in_bucket(resource, bucket) for resource in resources):
            raise malformed("Policy has invalid resource")
    return policy


def _is_s3_action(action: str) -> bool:
    vendor, _, name = action.partition(":")
    return action == "*" or (vendor.lower() == "s3" and bool(name))


def _in_bucket(resource: str, bucket: str) -> bool:
    arn = object_arn(bucket)
    return resource == arn or resource.startswith(f"{arn}/")


def is_public(policy: Policy) -> bool:
    """GetBucketPolicyStatus's IsPublic: some statement allows everyone without pinning the grant to
    fixed callers or sources (a simplification of S3's rule: it ignores which actions are granted)."""
    return any(_public_statement(statement) for statement in policy.statements)


def _public_statement(statement: Statement) -> bool:
    if statement.is_deny:
        return False
    if statement.principal is not None:
        everyone = statement.principal.anyone or "*" in statement.principal.aws
    else:  # an Allow with NotPrincipal grants everyone but the few it lists
        everyone = statement.not_principal is not None
    return everyone and not any(
        _pins(op, key, values) for op, key, values in _conditions(statement.condition)
    )


def _conditions(condition: Mapping[str, Any]) -> Iterable[tuple[str, str, Any]]:
    for operator, keys in condition.items():
        if isinstance(keys, Mapping):
            for key, values in keys.items():
                yield operator, key, values


def _pins(operator: str, key: str, values: Any) -> bool:
    """Whether one condition limits the grant to fixed values of a caller- or source-fixing key."""
    qualifier, _, name = operator.rpartition(":")
    # Negated operators, ...IfExists (a request without the key passes) and ForAllValues (vacuously true
    # when the key is absent) all let callers through that the values do not name.
    if name.startswith("Not") or name.endswith("IfExists") or qualifier == "ForAllValues":
        return False
    if key.lower() not in _FIXING_KEYS:
        return False
    listed = values if isinstance(values, list) else [values]
    wildcard = "Like" in name
    for value in listed:
        text = str(value)
        if (wildcard and ("*" in text or "?" in text)) or (
            key.lower() == "aws:sourceip" and text.endswith("/0")
        ):
            return False
    return bool(listed)
