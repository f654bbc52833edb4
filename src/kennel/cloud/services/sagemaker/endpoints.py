"""Endpoint operations: validate the request, read the records, and hand every change of state to
:class:`EndpointDeployments` (``deployments.py``), the state machine the provider owns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from kennel.cloud.services.base import Context
from kennel.cloud.services.sagemaker import tables as t
from kennel.cloud.services.sagemaker.common import list_page, not_found
from kennel.cloud.services.sagemaker.deployments import Desired, EndpointDeployments, load_specs
from kennel.cloud.services.sagemaker.resources import check_model_data, primary_container
from kennel.runtime.endpoints.shared import Endpoint, VariantSpec


class EndpointsMixin:
    """CreateEndpoint, DescribeEndpoint, ListEndpoints, DeleteEndpoint, UpdateEndpoint and
    UpdateEndpointWeightsAndCapacities."""

    cloud: Any
    deployments: EndpointDeployments
    # Provided by the provider class and ResourcesMixin.
    arn: Callable[[str, str], str]
    config_record: Callable[[str], dict[str, Any]]
    model_record: Callable[[str], dict[str, Any]]

    def resolve_specs(self, config: dict[str, Any]) -> list[VariantSpec]:
        """An endpoint config's variants with their models' containers, checked before anything starts."""
        specs = []
        for variant in config["spec"]["ProductionVariants"]:
            container = primary_container(self.model_record(variant["ModelName"])["spec"])
            check_model_data(container.get("ModelDataUrl"), self.cloud.settings.allow_local_model_data)
            specs.append(
                VariantSpec(
                    name=variant["VariantName"],
                    model_name=variant["ModelName"],
                    model_data_url=container.get("ModelDataUrl"),
                    environment=dict(container.get("Environment") or {}),
                    instance_type=variant["InstanceType"],
                    instance_count=int(variant["InitialInstanceCount"]),
                    weight=float(variant.get("InitialVariantWeight", 1.0)),
                    image=container.get("Image"),
                    startup_timeout_s=float(
                        variant.get("ContainerStartupHealthCheckTimeoutInSeconds") or 240
                    ),
                )
            )
        return specs

    def create_endpoint(self, params: dict, ctx: Context) -> dict:
        name, config_name = params["EndpointName"], params["EndpointConfigName"]
        specs = self.resolve_specs(self.config_record(config_name))
        arn = self.deployments.create(name, config_name, specs, params.get("Tags", []), ctx.now.timestamp())
        return {"EndpointArn": arn}

    def describe_endpoint(self, params: dict, ctx: Context) -> dict:
        name = params["EndpointName"]
        row = self.deployments.row(name)
        if row is None:
            raise not_found("endpoint", self.arn("endpoint", name))
        out: dict[str, Any] = {
            "EndpointName": row["name"],
            "EndpointArn": row["arn"],
            "EndpointConfigName": row["config_name"],
            "EndpointStatus": row["status"],
            "CreationTime": row["created"],
            "LastModifiedTime": row["modified"],
        }
        if row["failure_reason"]:
            out["FailureReason"] = row["failure_reason"][:1024]
        endpoint = self.deployments.live(name)
        if row["status"] not in ("Creating", "Failed"):
            out["ProductionVariants"] = _variant_summaries(load_specs(row["deployment"]), endpoint, row)
        if row["pending"]:
            out["PendingDeploymentSummary"] = {
                "EndpointConfigName": row["pending_config"] or "",
                "ProductionVariants": [
                    {
                        "VariantName": s.name,
                        "DesiredWeight": s.weight,
                        "DesiredInstanceCount": s.instance_count,
                        "InstanceType": s.instance_type,
                    }
                    for s in load_specs(row["pending"])
                ],
                "StartTime": row["modified"],
            }
        return out

    def list_endpoints(self, params: dict, ctx: Context) -> dict:
        c = t.endpoints.c
        with self.cloud.store.read() as conn:
            rows = [
                dict(r)
                for r in conn.execute(select(c.name, c.arn, c.created, c.modified, c.status)).mappings()
            ]
        page, token = list_page(
            rows,
            params,
            sort_keys={
                "Name": lambda r: r["name"],
                "CreationTime": lambda r: r["created"],
                "Status": lambda r: r["status"],
            },
        )
        out: dict[str, Any] = {
            "Endpoints": [
                {
                    "EndpointName": r["name"],
                    "EndpointArn": r["arn"],
                    "CreationTime": r["created"],
                    "LastModifiedTime": r["modified"],
                    "EndpointStatus": r["status"],
                }
                for r in page
            ]
        }
        if token:
            out["NextToken"] = token
        return out

    def delete_endpoint(self, params: dict, ctx: Context) -> dict:
        self.deployments.delete(params["EndpointName"])
        return {}

    def update_endpoint(self, params: dict, ctx: Context) -> dict:
        name, config_name = params["EndpointName"], params["EndpointConfigName"]
        specs = self.resolve_specs(self.config_record(config_name))
        arn = self.deployments.update(
            name, config_name, specs, bool(params.get("RetainAllVariantProperties")),
            params.get("ExcludeRetainedVariantProperties") or [],
        )  # fmt: skip
        return {"EndpointArn": arn}

    def update_endpoint_weights_and_capacities(self, params: dict, ctx: Context) -> dict:
        desired: Desired = {
            item["VariantName"]: (item.get("DesiredWeight"), item.get("DesiredInstanceCount"))
            for item in params["DesiredWeightsAndCapacities"]
        }
        return {"EndpointArn": self.deployments.scale(params["EndpointName"], desired)}


def _variant_summaries(specs: list[VariantSpec], endpoint: Endpoint | None, row: dict) -> list[dict]:
    variants = endpoint.fleet.variants if endpoint is not None else {}
    out = []
    for spec in specs:
        live = variants.get(spec.name)
        summary: dict[str, Any] = {
            "VariantName": spec.name,
            "CurrentWeight": live.weight if live else spec.weight,
            "DesiredWeight": live.desired_weight if live and live.desired_weight is not None else spec.weight,
            "CurrentInstanceCount": len(live.routable()) if live else 0,
            "DesiredInstanceCount": live.desired_count if live else spec.instance_count,
        }
        if spec.image:
            summary["DeployedImages"] = [
                {"SpecifiedImage": spec.image, "ResolvedImage": spec.image, "ResolutionTime": row["created"]}
            ]
        out.append(summary)
    return out
