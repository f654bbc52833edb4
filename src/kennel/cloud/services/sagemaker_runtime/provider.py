"""SageMaker Runtime (rest-json, signed as "sagemaker"): InvokeEndpoint.

The gateway has already verified the signature and authorised ``sagemaker:InvokeEndpoint`` on the
endpoint's ARN; this provider finds the endpoint's router (in memory), hands it the request and
turns the outcome into SageMaker's answers: the model's body and content type with
``x-Amzn-Invoked-Production-Variant``, or ``ModelError`` (424) carrying the model's own status and
message, ``ValidationError`` for unknown endpoints and variants, ``ServiceUnavailable`` while no
instance can take the request or every instance already holds its share (``endpoint_max_in_flight``).
"""

from __future__ import annotations

from kennel.cloud.errors import ServiceUnavailable, ValidationError, error_class
from kennel.cloud.services.base import Context, Provider
from kennel.cloud.services.sagemaker.common import sagemaker_arn
from kennel.runtime.endpoints.contract import MAX_BODY_BYTES
from kennel.runtime.endpoints.metrics import log_group
from kennel.runtime.endpoints.router import (
    EndpointBusy,
    InvocationRequest,
    InvocationTimedOut,
    ModelFailure,
    NoHealthyInstance,
    RoutingError,
    UnknownVariant,
)

ModelError = error_class("ModelError", 424)
_MESSAGE_LIMIT = 1000


class SageMakerRuntimeProvider(Provider):
    service = "sagemaker-runtime"

    def resource_arn(self, operation: str, params: dict, ctx: Context) -> str:
        name = params.get("EndpointName")
        return sagemaker_arn(ctx.region, ctx.account, "endpoint", name) if name else "*"

    def invoke_endpoint(self, params: dict, ctx: Context) -> dict:
        name = params["EndpointName"]
        body = params.get("Body") or b""
        if len(body) > MAX_BODY_BYTES:
            raise ValidationError(
                f"Request body of {len(body)} bytes exceeds the InvokeEndpoint limit of {MAX_BODY_BYTES} "
                "bytes (6 MB). Send smaller payloads, or a URL the model fetches."
            )
        for unsupported, what in (
            ("TargetModel", "multi-model endpoints"),
            ("InferenceComponentName", "inference components"),
            ("SessionId", "stateful sessions"),
        ):
            if params.get(unsupported):
                raise ValidationError(f"{unsupported} is for {what}, which Kennel does not support.")
        router = self.cloud.endpoints.router_for(name, ctx.account)
        request = InvocationRequest(
            body=body,
            content_type=params.get("ContentType"),
            accept=params.get("Accept"),
            custom_attributes=params.get("CustomAttributes"),
            target_variant=params.get("TargetVariant"),
            inference_id=params.get("InferenceId"),
        )
        try:
            result = router.invoke(request, started_at=ctx.now.timestamp())
        except RoutingError as exc:
            raise self._error(name, ctx, exc) from None
        out = {
            "Body": result.body,
            "ContentType": result.content_type,
            "InvokedProductionVariant": result.variant,
        }
        if result.custom_attributes:
            out["CustomAttributes"] = result.custom_attributes
        return out

    def _error(self, endpoint: str, ctx: Context, exc: RoutingError):
        if isinstance(exc, UnknownVariant):
            return ValidationError(exc.message)
        if isinstance(exc, NoHealthyInstance | EndpointBusy):
            # Kennel's own refusal, not the container's answer: InvokeEndpoint's model lists
            # ServiceUnavailable (503, "try your call again") for it, and SDKs retry a 503 with backoff.
            return ServiceUnavailable(exc.message)
        group = log_group(endpoint)
        where = f"See the log group {group}"
        if exc.instance_id:
            where += f" (stream {exc.variant}/{exc.instance_id})"
        where += f" in account {ctx.account} for more information."
        log_arn = f"arn:aws:logs:{ctx.region}:{ctx.account}:log-group:{group}"
        variant = exc.variant or "primary"
        if isinstance(exc, ModelFailure):
            kind = "client" if 400 <= exc.status < 500 else "server"
            shown = (
                exc.message if len(exc.message) <= _MESSAGE_LIMIT else exc.message[:_MESSAGE_LIMIT] + "..."
            )
            return ModelError(
                f'Received {kind} error ({exc.status}) from primary with message "{shown}". {where}',
                OriginalStatusCode=exc.status,
                OriginalMessage=exc.message,
                LogStreamArn=log_arn,
            )
        if isinstance(exc, InvocationTimedOut):
            detail = (
                f"Your invocation timed out while waiting for a response from container primary of variant "
                f"{variant} ({exc.message})."
            )
        else:  # InstanceLost, and any routing failure without a better wording
            detail = exc.message
        return ModelError(
            f'Received server error (0) from primary with message "{detail}". {where}', LogStreamArn=log_arn
        )
