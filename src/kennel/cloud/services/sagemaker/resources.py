"""Models and endpoint configurations: records in the store, checked the way SageMaker checks them."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from kennel.cloud.errors import ValidationException
from kennel.cloud.objectstore.seaweed import ObjectStoreUnavailable
from kennel.cloud.objectstore.store import ObjectNotReadable, object_arn, parse_s3_url
from kennel.cloud.services.base import Context
from kennel.cloud.services.sagemaker import tables as t
from kennel.cloud.services.sagemaker.common import already_exists, dumps, list_page, not_found
from kennel.cloud.services.sagemaker.modeldata import check_https_url, is_local, local_model_path


def check_model_data(url: str | None, allowed_local: Sequence[Path] = ()) -> None:
    """ModelDataUrl must name model data Kennel can read: an s3://bucket/key URL (checked against the
    store by :meth:`ResourcesMixin.check_s3_model_data`), an https:// URL, or (only in the directories
    ``allowed_local``, from KENNEL_ALLOW_LOCAL_MODEL_DATA) a local path or file:// URL."""
    if not url:
        return
    if url.startswith("s3://"):
        try:
            parse_s3_url(url)
        except ValueError:
            raise ValidationException(f"ModelDataUrl {url} must name an object: s3://bucket/key.") from None
        return
    if url.startswith("https://"):
        check_https_url(url, ValidationException)
        return
    if not is_local(url):
        raise ValidationException(
            f"ModelDataUrl {url} cannot be read: model data must be an s3:// or https:// URL."
        )
    local_model_path(url, allowed_local, ValidationException)


def read_model_data(url: str, read: Callable[[str, str], Any], error: Callable[[str], Exception]) -> Any:
    """``read(bucket, key)`` for an s3:// ModelDataUrl, its failures worded as SageMaker words them."""
    bucket, key = parse_s3_url(url)
    try:
        return read(bucket, key)
    except ObjectNotReadable as exc:
        if exc.code in ("NoSuchKey", "NoSuchBucket"):
            raise error(f"Could not find model data at {url}.") from None
        raise error(f"Could not access model data at {url}: {exc.code} {exc}") from None
    except ObjectStoreUnavailable as exc:
        raise error(f"Could not access model data at {url}: {exc}") from None


class ResourcesMixin:
    """CreateModel … DeleteEndpointConfig; mixed into the provider (needs ``arn`` and ``cloud``)."""

    cloud: Any
    arn: Callable[[str, str], str]

    # --- models -------------------------------------------------------------------------------------

    def check_s3_model_data(self, url: str, role_arn: str, ctx: Context) -> None:
        """SageMaker reads model data as the execution role, and CreateModel already checks it can."""
        bucket, key = parse_s3_url(url)
        region = self.cloud.settings.region
        denied = ValidationException(
            f'Could not access model data at {url}. Please ensure that the role "{role_arn}" exists and that '
            'its trust relationship policy allows the action "sts:AssumeRole" for the service principal '
            f'"sagemaker.amazonaws.com". Also ensure that the role has "s3:GetObject" permissions and that '
            f"the object is located in {region}."
        )
        role = (
            self.cloud.identities.role_session(role_arn.rsplit("/", 1)[-1], "SageMaker") if role_arn else None
        )
        if role is None:
            raise denied
        decision = self.cloud.authorizer.decide(
            role,
            "s3:GetObject",
            object_arn(bucket, key),
            now=ctx.now,
            region=ctx.region,
            request_id=ctx.request_id,
        )
        if not decision.allowed:
            raise denied
        read_model_data(url, self.cloud.objects.head, ValidationException)

    def create_model(self, params: dict, ctx: Context) -> dict:
        name = params["ModelName"]
        containers = params.get("Containers") or []
        if params.get("PrimaryContainer") and containers:
            raise ValidationException("Specify either PrimaryContainer or Containers, not both.")
        if not params.get("PrimaryContainer") and not containers:
            raise ValidationException("The model needs a PrimaryContainer (or Containers).")
        if len(containers) > 1:
            raise ValidationException(
                f"Kennel serves single-container models; this one lists {len(containers)} containers "
                "(inference pipelines are not supported)."
            )
        container = params.get("PrimaryContainer") or containers[0]
        if container.get("Mode") == "MultiModel":
            raise ValidationException("Multi-model endpoints (Mode=MultiModel) are not supported by Kennel.")
        for unsupported in ("ModelDataSource", "ModelPackageName"):
            if container.get(unsupported):
                raise ValidationException(
                    f"{unsupported} is not supported by Kennel; give the model.tar.gz as ModelDataUrl."
                )
        check_model_data(container.get("ModelDataUrl"), self.cloud.settings.allow_local_model_data)
        arn = self.arn("model", name)
        if params.get("ExecutionRoleArn"):
            # iam:PassRole for the model, and the role must trust sagemaker.amazonaws.com (checked before
            # the model data, which SageMaker reads as that role).
            self.cloud.service_roles.require_passable(
                ctx, params["ExecutionRoleArn"], "sagemaker.amazonaws.com", arn
            )
        if (container.get("ModelDataUrl") or "").startswith("s3://"):
            self.check_s3_model_data(container["ModelDataUrl"], params.get("ExecutionRoleArn") or "", ctx)
        spec = {k: v for k, v in params.items() if k != "Tags"}
        with self.cloud.store.write() as conn:
            if conn.execute(select(t.models.c.name).where(t.models.c.name == name)).first():
                raise already_exists("model", arn)
            conn.execute(
                t.models.insert().values(
                    name=name,
                    arn=arn,
                    created=ctx.now.timestamp(),
                    spec=dumps(spec),
                    tags=dumps(params.get("Tags", [])),
                )
            )
        return {"ModelArn": arn}

    def model_record(self, name: str) -> dict[str, Any]:
        with self.cloud.store.read() as conn:
            row = conn.execute(select(t.models).where(t.models.c.name == name)).mappings().first()
        if row is None:
            raise not_found("model", self.arn("model", name))
        return {**row, "spec": json.loads(row["spec"])}

    def describe_model(self, params: dict, ctx: Context) -> dict:
        record = self.model_record(params["ModelName"])
        spec = record["spec"]
        out = {
            "ModelName": record["name"],
            "ModelArn": record["arn"],
            "CreationTime": record["created"],
        }
        for key in (
            "PrimaryContainer",
            "Containers",
            "InferenceExecutionConfig",
            "ExecutionRoleArn",
            "VpcConfig",
            "EnableNetworkIsolation",
        ):
            if key in spec:
                out[key] = spec[key]
        out.setdefault("EnableNetworkIsolation", False)
        return out

    def list_models(self, params: dict, ctx: Context) -> dict:
        with self.cloud.store.read() as conn:
            rows = [
                dict(r)
                for r in conn.execute(select(t.models.c.name, t.models.c.arn, t.models.c.created)).mappings()
            ]
        page, token = list_page(
            rows, params, sort_keys={"Name": lambda r: r["name"], "CreationTime": lambda r: r["created"]}
        )
        out: dict[str, Any] = {
            "Models": [
                {"ModelName": r["name"], "ModelArn": r["arn"], "CreationTime": r["created"]} for r in page
            ]
        }
        if token:
            out["NextToken"] = token
        return out

    def delete_model(self, params: dict, ctx: Context) -> dict:
        name = params["ModelName"]
        with self.cloud.store.write() as conn:
            if conn.execute(delete(t.models).where(t.models.c.name == name)).rowcount == 0:
                raise not_found("model", self.arn("model", name))
        return {}

    # --- endpoint configs -------------------------------------------------------------------------------

    def create_endpoint_config(self, params: dict, ctx: Context) -> dict:
        name = params["EndpointConfigName"]
        variants = params["ProductionVariants"]
        seen: set[str] = set()
        for variant in variants:
            vname = variant["VariantName"]
            if vname in seen:
                raise ValidationException(
                    f"The variant name {vname} appears more than once in ProductionVariants."
                )
            seen.add(vname)
            if variant.get("ServerlessConfig"):
                raise ValidationException(
                    f"Variant {vname}: serverless variants are not supported by Kennel; give InstanceType "
                    "and InitialInstanceCount."
                )
            if not variant.get("InstanceType") or not variant.get("InitialInstanceCount"):
                raise ValidationException(
                    f"Variant {vname} must specify InstanceType and InitialInstanceCount."
                )
            if not variant.get("ModelName"):  # optional in the model (inference components), not here
                raise ValidationException(f"Variant {vname} must specify ModelName.")
            self.model_record(variant["ModelName"])  # AWS checks that every model exists now
        for unsupported in ("AsyncInferenceConfig", "ShadowProductionVariants"):
            if params.get(unsupported):
                raise ValidationException(f"{unsupported} is not supported by Kennel.")
        arn = self.arn("endpoint-config", name)
        spec = {k: v for k, v in params.items() if k != "Tags"}
        with self.cloud.store.write() as conn:
            if conn.execute(
                select(t.endpoint_configs.c.name).where(t.endpoint_configs.c.name == name)
            ).first():
                raise already_exists("endpoint-config", arn)
            conn.execute(
                t.endpoint_configs.insert().values(
                    name=name,
                    arn=arn,
                    created=ctx.now.timestamp(),
                    spec=dumps(spec),
                    tags=dumps(params.get("Tags", [])),
                )
            )
        return {"EndpointConfigArn": arn}

    def config_record(self, name: str) -> dict[str, Any]:
        with self.cloud.store.read() as conn:
            row = (
                conn.execute(select(t.endpoint_configs).where(t.endpoint_configs.c.name == name))
                .mappings()
                .first()
            )
        if row is None:
            raise not_found("endpoint-config", self.arn("endpoint-config", name))
        return {**row, "spec": json.loads(row["spec"])}

    def describe_endpoint_config(self, params: dict, ctx: Context) -> dict:
        record = self.config_record(params["EndpointConfigName"])
        spec = record["spec"]
        variants = [
            {**v, "InitialVariantWeight": v.get("InitialVariantWeight", 1.0)}
            for v in spec["ProductionVariants"]
        ]
        out = {
            "EndpointConfigName": record["name"],
            "EndpointConfigArn": record["arn"],
            "ProductionVariants": variants,
            "CreationTime": record["created"],
        }
        for key in (
            "DataCaptureConfig",
            "KmsKeyId",
            "ExplainerConfig",
            "ExecutionRoleArn",
            "VpcConfig",
            "EnableNetworkIsolation",
            "MetricsConfig",
        ):
            if key in spec:
                out[key] = spec[key]
        return out

    def list_endpoint_configs(self, params: dict, ctx: Context) -> dict:
        cols = t.endpoint_configs.c
        with self.cloud.store.read() as conn:
            rows = [dict(r) for r in conn.execute(select(cols.name, cols.arn, cols.created)).mappings()]
        page, token = list_page(
            rows, params, sort_keys={"Name": lambda r: r["name"], "CreationTime": lambda r: r["created"]}
        )
        out: dict[str, Any] = {
            "EndpointConfigs": [
                {"EndpointConfigName": r["name"], "EndpointConfigArn": r["arn"], "CreationTime": r["created"]}
                for r in page
            ]
        }
        if token:
            out["NextToken"] = token
        return out

    def delete_endpoint_config(self, params: dict, ctx: Context) -> dict:
        name = params["EndpointConfigName"]
        with self.cloud.store.write() as conn:
            if (
                conn.execute(delete(t.endpoint_configs).where(t.endpoint_configs.c.name == name)).rowcount
                == 0
            ):
                raise not_found("endpoint-config", self.arn("endpoint-config", name))
        return {}


def primary_container(spec: dict[str, Any]) -> dict[str, Any]:
    return spec.get("PrimaryContainer") or (spec.get("Containers") or [{}])[0]
