"""Lambda names, ARNs, timestamps and errors: the small pure pieces every operation shares."""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from kennel.cloud.errors import error_class
from kennel.cloud.services.paging import Paginator, Scalar

InvalidParameterValue = error_class("InvalidParameterValueException", 400)
ResourceNotFound = error_class("ResourceNotFoundException", 404)
ResourceConflict = error_class("ResourceConflictException", 409)
PreconditionFailed = error_class("PreconditionFailedException", 412)
TooManyRequests = error_class("TooManyRequestsException", 429)
RequestTooLarge = error_class("RequestTooLargeException", 413)
InvalidRequestContent = error_class("InvalidRequestContentException", 400)
ProvisionedNotFound = error_class("ProvisionedConcurrencyConfigNotFoundException", 404)
Validation = error_class("ValidationException", 400)

LATEST = "$LATEST"
MIN_TIMEOUT, MAX_TIMEOUT, DEFAULT_TIMEOUT = 1, 900, 3
MIN_MEMORY, MAX_MEMORY, DEFAULT_MEMORY = 128, 10240, 128
MAX_ZIP_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 262_144_000
TOTAL_CODE_SIZE = 80_530_636_800
DEFAULT_PAGE = 50

# Keys the Lambda runtime sets itself; AWS refuses them in Environment.Variables.
RESERVED_VARIABLES = frozenset(
    {
        "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
    }
)  # fmt: skip

_NAME = re.compile(
    r"^(?:arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
    r"|(?P<short_account>\d{12}):function:)?"
    r"(?P<name>[a-zA-Z0-9_-]+)(?::(?P<qualifier>\$LATEST|[a-zA-Z0-9_-]+))?$"
)
_VERSION = re.compile(r"^\d+$")


def user(message: str, cls=InvalidParameterValue):
    """Lambda's errors carry ``Type: User`` beside the message."""
    return cls(message, Type="User")


def split_name(function_name: str, qualifier: str | None, account: str) -> tuple[str, str | None]:
    """(name, qualifier) from a name, a partial ARN (``ACCT:function:name``) or a full ARN."""
    match = _NAME.match(function_name or "")
    if match is None:
        raise user(f"Function name {function_name!r} is not a function name or a function ARN.")
    named_account = match.group("account") or match.group("short_account")
    if named_account and named_account != account:
        raise user(f"Function {function_name} belongs to account {named_account}; Kennel is {account}.",
                   ResourceNotFound)  # fmt: skip
    derived = match.group("qualifier")
    if derived and qualifier and derived != qualifier:
        raise user("The derived qualifier from the function name does not match the specified qualifier.")
    return match.group("name"), derived or qualifier or None


def function_arn(region: str, account: str, name: str, qualifier: str | None = None) -> str:
    base = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def is_version(qualifier: str) -> bool:
    return qualifier == LATEST or bool(_VERSION.match(qualifier))


def lambda_time(epoch: float) -> str:
    """Lambda's LastModified format: ``2024-01-02T03:04:05.678+0000``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}+0000"


def sha256_b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def revision() -> str:
    return str(uuid.uuid4())


def role_name(role_arn: str) -> str | None:
    """The role's name from ``arn:aws:iam::ACCT:role/path/name`` (None for anything else)."""
    match = re.match(r"^arn:aws:iam::\d{12}:role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]+)$", role_arn or "")
    return match.group(1) if match else None


def check_limits(timeout: int | None, memory: int | None) -> None:
    problems = []
    if timeout is not None and not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
        bound = "greater than or equal to 1" if timeout < MIN_TIMEOUT else "less than or equal to 900"
        problems.append(
            f"Value '{timeout}' at 'timeout' failed to satisfy constraint: Member must have value {bound}"
        )
    if memory is not None and not MIN_MEMORY <= memory <= MAX_MEMORY:
        bound = "greater than or equal to 128" if memory < MIN_MEMORY else "less than or equal to 10240"
        problems.append(
            f"Value '{memory}' at 'memorySize' failed to satisfy constraint: Member must have value {bound}"
        )
    if problems:
        count = f"{len(problems)} validation error{'s' if len(problems) > 1 else ''} detected: "
        raise Validation(count + "; ".join(problems))


def check_variables(variables: dict[str, str]) -> None:
    reserved = sorted(set(variables) & RESERVED_VARIABLES)
    if reserved:
        raise user(
            "Lambda was unable to configure your environment variables because the environment variables "
            "you have provided contains reserved keys that are currently not supported for modification. "
            f"Reserved keys used in this request: {', '.join(reserved)}"
        )


def check_runtime(runtime: str | None, package_type: str | None) -> None:
    if package_type == "Image":
        raise user(
            "Kennel runs Zip deployment packages only; container images (PackageType Image) "
            "are not supported."
        )
    if not runtime:
        raise user(
            "Runtime and Handler are mandatory parameters for functions created with deployment packages."
        )
    if not re.fullmatch(r"python3\.\d+", runtime):
        raise user(f"Kennel runs Python functions only: runtime {runtime} is not supported (use python3.x).")


PAGES = Paginator(lambda _marker: user("Invalid marker."))


def page(
    items: list, marker: str | None, max_items: int | None, *, key: Callable[[Any], Sequence[Scalar]]
) -> tuple[list, str | None]:
    """Lambda's Marker/MaxItems pagination in ``key`` order (unique per item); the marker names the
    last key returned."""
    return PAGES.page(items, key, limit=max_items or DEFAULT_PAGE, token=marker)


def version_order(version: str) -> int:
    """Where a version sorts among its function's: $LATEST first, then the published ones by number."""
    return -1 if version == LATEST else int(version)
