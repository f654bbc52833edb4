"""SageMaker endpoint variants as scalable resources, through SageMaker's own API.

Application Auto Scaling acts on a variant the way AWS does: it reads DescribeEndpoint and calls
UpdateEndpointWeightsAndCapacities, as the service-linked role
``AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint``. Going through the provider's operations
(rather than reaching into its runtime) keeps one contract between the two services — the AWS one —
and gives the endpoint the same Updating → InService life cycle a user's call gives it.

These internal calls are not IAM-authorised: AWS's service-linked role always holds the permissions it
needs, and the user's authority was checked when the policy or target was created.
"""

from __future__ import annotations

from kennel.cloud.auth.identity import Principal, assumed_role_arn
from kennel.cloud.errors import AwsError, ValidationException
from kennel.cloud.services.autoscaling.common import SERVICE_ROLE, service_linked_role_arn, variant_of
from kennel.runtime.autoscaling.loop import Capacity

_ROLE_NAME = SERVICE_ROLE.rsplit("/", 1)[1]
_SESSION = "AutoScaling"


class SageMakerVariants:
    """Implements ``kennel.runtime.autoscaling.loop.ScalableResource`` for endpoint variants."""

    def __init__(self, cloud) -> None:
        self.cloud = cloud
        account = cloud.settings.account_id
        self.principal = Principal(
            arn=assumed_role_arn(account, _ROLE_NAME, _SESSION),
            identity_arn=service_linked_role_arn(account),
            kind="assumed-role",
            name=_ROLE_NAME,
            user_id=f"AROAAUTOSCALINGSAGEMAKER:{_SESSION}",
            account=account,
            session_name=_SESSION,
        )

    def _call(self, operation: str, params: dict) -> dict:
        return self.cloud.internal_call("sagemaker", operation, params, self.principal)

    def _describe(self, endpoint: str) -> dict | None:
        try:
            return self._call("DescribeEndpoint", {"EndpointName": endpoint})
        except AwsError as exc:
            if exc.code == "ValidationException":
                return None  # SageMaker's "Could not find endpoint"
            raise

    def check(self, resource_id: str) -> Capacity:
        """The variant's capacity, or the ValidationException RegisterScalableTarget answers with."""
        endpoint, variant = variant_of(resource_id)
        described = self._describe(endpoint)
        if described is None:
            raise ValidationException(f"The endpoint {endpoint} does not exist (resource {resource_id}).")
        if "ProductionVariants" not in described:
            raise ValidationException(
                f"The endpoint {endpoint} is {described['EndpointStatus']}; its variants can be registered "
                "once it is InService."
            )
        capacity = _variant(described, variant)
        if capacity is None:
            raise ValidationException(f"The variant {variant} does not exist in the endpoint {endpoint}.")
        return capacity

    # ----- ScalableResource -------------------------------------------------------------------------------
    def capacity(self, resource_id: str) -> Capacity | None:
        endpoint, variant = variant_of(resource_id)
        described = self._describe(endpoint)
        return None if described is None else _variant(described, variant)

    def prepare(self, resource_id: str, may_grow: bool) -> None:
        """Keep a warm standby instance while the variant may still scale out (none once it cannot)."""
        endpoint, variant = variant_of(resource_id)
        self.cloud.endpoints.keep_standby(endpoint, variant, may_grow)

    def set_desired_capacity(self, resource_id: str, count: int) -> None:
        endpoint, variant = variant_of(resource_id)
        self._call(
            "UpdateEndpointWeightsAndCapacities",
            {
                "EndpointName": endpoint,
                "DesiredWeightsAndCapacities": [{"VariantName": variant, "DesiredInstanceCount": count}],
            },
        )


def _variant(described: dict, name: str) -> Capacity | None:
    status = described["EndpointStatus"]
    for summary in described.get("ProductionVariants") or []:
        if summary["VariantName"] == name:
            return Capacity(
                desired=summary.get("DesiredInstanceCount", 0),
                current=summary.get("CurrentInstanceCount", 0),
                updating=status != "InService",
                failure=described.get("FailureReason"),
            )
    return None
