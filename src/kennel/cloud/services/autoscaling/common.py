"""Shared by the Application Auto Scaling operations: errors, keys, ARNs, pagination."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kennel.cloud.errors import ValidationException, error_class
from kennel.cloud.services.paging import Paginator, Scalar

ObjectNotFound = error_class("ObjectNotFoundException")
InvalidNextToken = error_class("InvalidNextTokenException")
LimitExceeded = error_class("LimitExceededException")

PAGES = Paginator(lambda _token: InvalidNextToken("Invalid token"))

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
_VARIANT = re.compile(r"endpoint/([^/]+)/variant/([^/]+)")
_OTHER_SAGEMAKER = (
    "sagemaker:variant:DesiredProvisionedConcurrency",
    "sagemaker:inference-component:DesiredCopyCount",
)
SERVICE_ROLE = (
    "role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)
UNSUPPORTED = "Unsupported service namespace, resource type or scalable dimension"


@dataclass(frozen=True)
class Key:
    namespace: str
    resource_id: str
    dimension: str

    def describe(self) -> str:
        return (
            f"service namespace: {self.namespace}, resource ID: {self.resource_id}, "
            f"scalable dimension: {self.dimension}"
        )

    @property
    def endpoint(self) -> str:
        return variant_of(self.resource_id)[0]

    @property
    def variant(self) -> str:
        return variant_of(self.resource_id)[1]


def variant_of(resource_id: str) -> tuple[str, str]:
    match = _VARIANT.fullmatch(resource_id)
    if match is None:
        raise ValidationException(UNSUPPORTED)
    return match.group(1), match.group(2)


def key_of(params: dict) -> Key:
    """The scalable target a request names, refused unless Kennel can scale it."""
    namespace, resource_id, dimension = (
        params["ServiceNamespace"],
        params["ResourceId"],
        params["ScalableDimension"],
    )
    if namespace != NAMESPACE:
        raise ValidationException(
            f"Kennel scales SageMaker endpoint variants only (ServiceNamespace {NAMESPACE}); "
            f"{namespace} resources cannot be registered here."
        )
    if dimension in _OTHER_SAGEMAKER:
        raise ValidationException(
            f"Kennel supports the scalable dimension {DIMENSION} only, not {dimension}."
        )
    if dimension != DIMENSION or _VARIANT.fullmatch(resource_id) is None:
        raise ValidationException(UNSUPPORTED)
    return Key(namespace, resource_id, dimension)


def key_filter(params: dict) -> tuple[str, str | None, str | None]:
    """(namespace, resource id or None, dimension or None) for the Describe operations."""
    return params["ServiceNamespace"], params.get("ResourceId"), params.get("ScalableDimension")


def new_id() -> str:
    return str(uuid.uuid4())


def target_arn(region: str, account: str) -> str:
    suffix = uuid.uuid4().hex + uuid.uuid4().hex[:4]
    return f"arn:aws:application-autoscaling:{region}:{account}:scalable-target/{suffix}"


def policy_arn(region: str, account: str, key: Key, name: str) -> str:
    return (
        f"arn:aws:autoscaling:{region}:{account}:scalingPolicy:{new_id()}:resource/{key.namespace}/"
        f"{key.resource_id}:policyName/{name}"
    )


def scheduled_arn(region: str, account: str, key: Key, name: str) -> str:
    return (
        f"arn:aws:autoscaling:{region}:{account}:scheduledAction:{new_id()}:resource/{key.namespace}/"
        f"{key.resource_id}:scheduledActionName/{name}"
    )


def service_linked_role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:{SERVICE_ROLE}"


def when(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def page(
    items: list,
    params: dict,
    *,
    limit: int,
    key: Callable[[Any], Sequence[Scalar]],
    descending: bool = False,
) -> tuple[list, str | None]:
    """A page of ``items`` in ``key`` order (unique per item) behind a token naming the last key returned;
    MaxResults above ``limit`` is refused as AWS does."""
    size = params.get("MaxResults")
    if size is not None and not 1 <= size <= limit:
        raise ValidationException(
            f"1 validation error detected: Value '{size}' at 'maxResults' failed to satisfy constraint: "
            f"Member must have value {f'less than or equal to {limit}' if size > limit else 'greater than 0'}"
        )
    return PAGES.page(items, key, limit=size or limit, token=params.get("NextToken"), descending=descending)
