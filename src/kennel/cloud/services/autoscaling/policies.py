"""PutScalingPolicy, DescribeScalingPolicies, DeleteScalingPolicy, and the alarms target tracking creates.

A target-tracking policy gets two managed CloudWatch alarms named as AWS names them
(``TargetTracking-<resource id>-AlarmHigh-<uuid>`` / ``-AlarmLow-<uuid>``): one-minute periods of the
tracked metric, high on 3 of 3 datapoints above the target, low on 15 of 15 below 90 % of it. With
DisableScaleIn there is no low alarm. A step-scaling policy creates no alarm: the user's own alarm
invokes it by listing the policy ARN in its AlarmActions.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import delete, select

from kennel.cloud.errors import ValidationException
from kennel.cloud.services.autoscaling import tables as t
from kennel.cloud.services.autoscaling.common import (
    Key,
    ObjectNotFound,
    key_filter,
    key_of,
    page,
    policy_arn,
    when,
)
from kennel.cloud.services.autoscaling.targets import where_key
from kennel.cloud.services.base import Context
from kennel.runtime.autoscaling.policy import ADJUSTMENT_TYPES

PREDEFINED = "SageMakerVariantInvocationsPerInstance"
POLICIES_PAGE = 10
HIGH_PERIODS, LOW_PERIODS, LOW_FRACTION = 3, 15, 0.9


class ScalingPoliciesMixin:
    cloud: Any
    loop: Any
    require_target: Any

    def put_scaling_policy(self, params: dict, ctx: Context) -> dict:
        key = key_of(params)
        name = params["PolicyName"]
        policy_type = params.get("PolicyType") or "StepScaling"  # AWS: an omitted type means StepScaling
        if policy_type == "TargetTrackingScaling":
            config = params.get("TargetTrackingScalingPolicyConfiguration")
            if config is None:
                raise ValidationException(
                    "TargetTrackingScalingPolicyConfiguration is required for TargetTrackingScaling"
                )
            _check_tracking(config)
        elif policy_type == "StepScaling":
            config = params.get("StepScalingPolicyConfiguration")
            if config is None:
                raise ValidationException("StepScalingPolicyConfiguration is required for StepScaling")
            _check_steps(config)
        else:
            raise ValidationException(
                f"{policy_type} policies are not supported for SageMaker endpoint variants"
            )
        settings = self.cloud.settings
        now = ctx.now.timestamp()
        with self.cloud.store.read() as conn:
            target = self.require_target(conn, key)
            old = conn.execute(
                select(t.policies).where(where_key(t.policies, key), t.policies.c.name == name)
            ).first()
        if policy_type == "TargetTrackingScaling" and target.min_capacity < 1:
            raise ValidationException(
                "SageMaker target tracking needs the scalable target's MinCapacity to be at least 1"
            )
        arn = old.arn if old is not None else policy_arn(settings.region, settings.account_id, key, name)
        previous = json.loads(old.alarms) if old is not None else []
        alarms = (
            self._alarm_specs(key, arn, config, previous) if policy_type == "TargetTrackingScaling" else []
        )
        kept = {spec["AlarmName"] for spec in alarms}
        # The alarms are written first and in their own transactions (CloudWatch's store, not ours).
        refs = [
            {"AlarmName": spec["AlarmName"], "AlarmARN": self.cloud.alarms.put_managed_alarm(spec, arn, now)}
            for spec in alarms
        ]
        row = {
            "arn": arn,
            "name": name,
            "namespace": key.namespace,
            "resource_id": key.resource_id,
            "dimension": key.dimension,
            "policy_type": policy_type,
            "config": json.dumps(config),
            "alarms": json.dumps(refs),
            "created": old.created if old is not None else now,
        }
        with self.cloud.store.write() as conn:
            conn.execute(delete(t.policies).where(t.policies.c.arn == arn))
            conn.execute(t.policies.insert().values(**row))
        self.cloud.alarms.delete_managed_alarms(
            [a["AlarmName"] for a in previous if a["AlarmName"] not in kept]
        )
        self.loop.wake()
        out: dict[str, Any] = {"PolicyARN": arn}
        if policy_type == "TargetTrackingScaling":
            out["Alarms"] = refs
        return out

    def _alarm_specs(self, key: Key, arn: str, config: dict, previous: list[dict]) -> list[dict]:
        """The managed alarms of a target-tracking policy; an update keeps the names it had."""
        names = {("High" if "-AlarmHigh-" in a["AlarmName"] else "Low"): a["AlarmName"] for a in previous}
        target = config["TargetValue"]
        metric = _alarm_metric(key, config)
        common = {
            "ActionsEnabled": True,
            "AlarmActions": [arn],
            **metric,
            "AlarmDescription": f"DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {arn}.",
        }
        suffix = uuid.uuid4()
        specs = [
            {
                **common,
                "AlarmName": names.get("High", f"TargetTracking-{key.resource_id}-AlarmHigh-{suffix}"),
                "EvaluationPeriods": HIGH_PERIODS,
                "DatapointsToAlarm": HIGH_PERIODS,
                "Threshold": float(target),
                "ComparisonOperator": "GreaterThanThreshold",
            }
        ]
        if not config.get("DisableScaleIn"):
            low = names.get("Low", f"TargetTracking-{key.resource_id}-AlarmLow-{uuid.uuid4()}")
            specs.append(
                {
                    **common,
                    "AlarmName": low,
                    "EvaluationPeriods": LOW_PERIODS,
                    "DatapointsToAlarm": LOW_PERIODS,
                    "Threshold": float(target) * LOW_FRACTION,
                    "ComparisonOperator": "LessThanThreshold",
                }
            )
        return specs

    def describe_scaling_policies(self, params: dict, ctx: Context) -> dict:
        namespace, resource_id, dimension = key_filter(params)
        c = t.policies.c
        query = select(t.policies).where(c.namespace == namespace).order_by(c.created, c.name)
        if resource_id:
            query = query.where(c.resource_id == resource_id)
        if dimension:
            query = query.where(c.dimension == dimension)
        if params.get("PolicyNames"):
            query = query.where(c.name.in_(params["PolicyNames"]))
        with self.cloud.store.read() as conn:
            rows = conn.execute(query).all()
        chunk, token = page(rows, params, limit=POLICIES_PAGE, key=lambda r: (r.created, r.name, r.arn))
        out: dict[str, Any] = {"ScalingPolicies": [self._policy_shape(r) for r in chunk]}
        if token:
            out["NextToken"] = token
        return out

    def _policy_shape(self, row) -> dict:
        config_key = (
            "TargetTrackingScalingPolicyConfiguration"
            if row.policy_type == "TargetTrackingScaling"
            else "StepScalingPolicyConfiguration"
        )
        alarms = json.loads(row.alarms)
        if row.policy_type == "StepScaling":
            settings = self.cloud.settings
            alarms = [
                {
                    "AlarmName": s.name,
                    "AlarmARN": f"arn:aws:cloudwatch:{settings.region}:{settings.account_id}:alarm:{s.name}",
                }
                for s in self.cloud.alarms.alarms_acting_on(row.arn)
            ]
        return {
            "PolicyARN": row.arn,
            "PolicyName": row.name,
            "ServiceNamespace": row.namespace,
            "ResourceId": row.resource_id,
            "ScalableDimension": row.dimension,
            "PolicyType": row.policy_type,
            config_key: json.loads(row.config),
            "Alarms": alarms,
            "CreationTime": when(row.created),
        }

    def delete_scaling_policy(self, params: dict, ctx: Context) -> dict:
        key = key_of(params)
        name = params["PolicyName"]
        with self.cloud.store.write() as conn:
            row = conn.execute(
                select(t.policies).where(where_key(t.policies, key), t.policies.c.name == name)
            ).first()
            if row is None:
                raise ObjectNotFound(f"No scaling policy found for {key.describe()}, policy name: {name}")
            conn.execute(delete(t.policies).where(t.policies.c.arn == row.arn))
        self.cloud.alarms.delete_managed_alarms([a["AlarmName"] for a in json.loads(row.alarms)])
        return {}


def _alarm_metric(key: Key, config: dict) -> dict:
    """The metric part of a managed alarm: SageMaker's, or the customized one at 60-second periods."""
    custom = config.get("CustomizedMetricSpecification")
    if custom is None:
        dims = [
            {"Name": "EndpointName", "Value": key.endpoint},
            {"Name": "VariantName", "Value": key.variant},
        ]
        return {
            "Namespace": "AWS/SageMaker",
            "MetricName": "InvocationsPerInstance",
            "Dimensions": dims,
            "Statistic": "Sum",
            "Period": 60,
        }
    if custom.get("Metrics"):
        queries = []
        for query in custom["Metrics"]:
            item = {k: query[k] for k in ("Id", "Expression", "Label", "ReturnData") if k in query}
            if "MetricStat" in query:
                stat = query["MetricStat"]
                item["MetricStat"] = {
                    "Metric": stat["Metric"],
                    "Stat": stat["Stat"],
                    "Period": 60,
                    **({"Unit": stat["Unit"]} if stat.get("Unit") else {}),
                }
            queries.append(item)
        return {"Metrics": queries}
    out = {
        "Namespace": custom["Namespace"],
        "MetricName": custom["MetricName"],
        "Dimensions": custom.get("Dimensions") or [],
        "Statistic": custom["Statistic"],
        "Period": 60,
    }
    if custom.get("Unit"):
        out["Unit"] = custom["Unit"]
    return out


def _check_tracking(config: dict) -> None:
    if not config["TargetValue"] > 0:
        raise ValidationException("The target value must be greater than 0")
    for label in ("ScaleOutCooldown", "ScaleInCooldown"):
        if config.get(label, 0) < 0:
            raise ValidationException(f"{label} must be greater than or equal to 0")
    predefined, custom = (
        config.get("PredefinedMetricSpecification"),
        config.get("CustomizedMetricSpecification"),
    )
    if (predefined is None) == (custom is None):
        raise ValidationException(
            "Exactly one of PredefinedMetricSpecification and CustomizedMetricSpecification must be specified"
        )
    if predefined is not None:
        kind = predefined["PredefinedMetricType"]
        if kind != PREDEFINED:
            raise ValidationException(
                f"Unsupported predefined metric type {kind} for SageMaker endpoint variants in Kennel; "
                f"use {PREDEFINED} "
                "or a CustomizedMetricSpecification"
            )
        if predefined.get("ResourceLabel"):
            raise ValidationException(
                f"ResourceLabel is not valid with the predefined metric type {PREDEFINED}"
            )
        return
    assert custom is not None
    simple = [k for k in ("MetricName", "Namespace", "Statistic") if custom.get(k)]
    if custom.get("Metrics"):
        if simple or custom.get("Dimensions"):
            raise ValidationException(
                "Metrics cannot be combined with MetricName, Namespace, Dimensions or Statistic"
            )
        if sum(1 for q in custom["Metrics"] if q.get("ReturnData", True)) != 1:
            raise ValidationException("Exactly one metric data query must have ReturnData set to true")
        for query in custom["Metrics"]:
            if ("MetricStat" in query) == ("Expression" in query):
                raise ValidationException(
                    f"Metric query {query['Id']} needs exactly one of MetricStat and Expression"
                )
    elif len(simple) != 3:
        raise ValidationException(
            "A CustomizedMetricSpecification needs MetricName, Namespace and Statistic (or Metrics)"
        )


def _check_steps(config: dict) -> None:
    kind = config.get("AdjustmentType")
    if kind not in ADJUSTMENT_TYPES:
        raise ValidationException(f"AdjustmentType must be one of {', '.join(ADJUSTMENT_TYPES)}")
    steps = config.get("StepAdjustments") or []
    if not steps:
        raise ValidationException("StepAdjustments must contain at least one step adjustment")
    if config.get("MinAdjustmentMagnitude") is not None and kind != "PercentChangeInCapacity":
        raise ValidationException(
            "MinAdjustmentMagnitude is only valid with the PercentChangeInCapacity adjustment type"
        )
    if config.get("Cooldown", 0) < 0:
        raise ValidationException("Cooldown must be greater than or equal to 0")
    if kind == "ExactCapacity" and any(s["ScalingAdjustment"] < 0 for s in steps):
        raise ValidationException("ScalingAdjustment must be non-negative with ExactCapacity")
    ordered = sorted(
        steps,
        key=lambda s: (
            -float("inf") if s.get("MetricIntervalLowerBound") is None else s["MetricIntervalLowerBound"]
        ),
    )
    for step in ordered:
        lo, hi = step.get("MetricIntervalLowerBound"), step.get("MetricIntervalUpperBound")
        if lo is not None and hi is not None and lo >= hi:
            raise ValidationException(
                "MetricIntervalUpperBound must be greater than MetricIntervalLowerBound"
            )
    for i, step in enumerate(ordered):
        lo, hi = step.get("MetricIntervalLowerBound"), step.get("MetricIntervalUpperBound")
        if (lo is None and i > 0) or (hi is None and i < len(ordered) - 1):
            raise ValidationException(
                "Only the lowest step may have no lower bound and only the highest no upper bound"
            )
        if i + 1 < len(ordered) and hi != ordered[i + 1].get("MetricIntervalLowerBound"):
            raise ValidationException(
                "Step adjustments must not overlap and must not leave gaps between intervals"
            )
