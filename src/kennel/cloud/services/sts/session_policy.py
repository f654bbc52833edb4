"""Session policies passed to AssumeRole (``Policy`` and ``PolicyArns``): checked as STS checks them.

What AWS documents (STS API reference, AssumeRole; IAM user guide, access_policies "Session policies"):
up to 10 managed policy ARNs, which must be in the role's account (or AWS managed); the plaintext of the
inline and managed session policies together at most 2,048 characters; and the inline policy, the ARNs
and session tags are then compressed into a packed binary form with a limit of its own, reported as
``PackedPolicySize`` (a percentage) and refused past 100 % with ``PackedPolicyTooLarge``.

AWS does not publish the packed format or its limit. Kennel's model of it (inference): the compact inline
document and the ARNs compressed with zlib, against 1,024 bytes — so, as on AWS, a policy within the
plaintext limit can still be refused when it compresses badly (long random names), while the usual
policies of a few statements report a small percentage.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kennel.cloud.errors import ValidationError, error_class
from kennel.cloud.policy.policy import MalformedPolicyDocument, PolicyKind, parse_policy

__all__ = [
    "MAX_PLAINTEXT",
    "MAX_POLICY_ARNS",
    "PACKED_LIMIT_BYTES",
    "MalformedPolicy",
    "PackedPolicyTooLarge",
    "SessionPolicies",
    "check_session_policies",
    "packed_percent",
]

MAX_POLICY_ARNS = 10
MAX_PLAINTEXT = 2048
PACKED_LIMIT_BYTES = 1024

PackedPolicyTooLarge = error_class("PackedPolicyTooLarge", 400)
MalformedPolicy = error_class("MalformedPolicyDocument", 400)

_POLICY_ARN_RE = re.compile(r"^arn:aws:iam::(\d{12}|aws):policy/(?:[\w+=,.@-]+/)*[\w+=,.@-]+$")


@dataclass(frozen=True)
class SessionPolicies:
    """What to store with the session: None for a part not passed."""

    policy: str | None
    policy_arns: tuple[str, ...] | None
    packed_percent: int


def _compact(document: str) -> str:
    return json.dumps(json.loads(document), separators=(",", ":"))


def packed_percent(policy: str | None, arns: Sequence[str]) -> int:
    """Kennel's PackedPolicySize: the compressed inline policy and ARNs as a share of the packed limit,
    rounded up so that anything over the limit reads over 100."""
    if policy is None and not arns:
        return 0
    plain = (_compact(policy) if policy is not None else "") + "".join(arns)
    packed = len(zlib.compress(plain.encode("utf-8"), 9))
    return math.ceil(100 * packed / PACKED_LIMIT_BYTES)


def check_session_policies(
    policy: str | None,
    policy_arns: Sequence[dict] | None,
    *,
    role_account: str,
    policy_exists: Callable[[str], bool],
) -> SessionPolicies:
    """Validate AssumeRole's session policies; raises STS's errors. ``policy_exists(arn)`` says whether
    a managed policy is there to use."""
    arns = [entry.get("arn") or "" for entry in policy_arns or []]
    if len(arns) > MAX_POLICY_ARNS:
        raise ValidationError(
            f"1 validation error detected: Value '{arns}' at 'policyArns' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_POLICY_ARNS}"
        )
    for arn in arns:
        match = _POLICY_ARN_RE.match(arn)
        if match is None or match.group(1) not in ("aws", role_account):
            # Managed session policies must live in the role's account or be AWS managed.
            raise MalformedPolicy(f"The policy ARN {arn} is not a managed policy in account {role_account}.")
        if not policy_exists(arn):
            raise MalformedPolicy(f"Policy {arn} does not exist or is not attachable.")
    if policy is not None:
        try:
            parse_policy(policy, kind=PolicyKind.IDENTITY)
        except MalformedPolicyDocument as exc:
            raise MalformedPolicy(str(exc)) from None
        except RecursionError:  # nesting beyond what any policy needs; a 400, never a crash
            raise MalformedPolicy("Syntax errors in policy.") from None
    plaintext = (len(_compact(policy)) if policy is not None else 0) + sum(map(len, arns))
    percent = packed_percent(policy, arns)
    if plaintext > MAX_PLAINTEXT:
        percent = max(percent, math.ceil(100 * plaintext / MAX_PLAINTEXT))
    if percent > 100:
        raise PackedPolicyTooLarge(
            f"Packed policy consumes {percent}% of allotted space, please use smaller policy."
        )
    # An empty PolicyArns list passes no policy: the session is not limited by it.
    return SessionPolicies(policy, tuple(arns) if arns else None, percent)
