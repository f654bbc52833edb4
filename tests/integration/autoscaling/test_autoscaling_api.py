"""Application Auto Scaling through boto3 against the live gateway: every operation, its validation and
errors, the managed CloudWatch alarms, and capacity changes that need no metric window (step scaling
driven by SetAlarmState, scheduled actions) on a real endpoint. The session gateway runs in real time,
so target tracking's own windows are exercised in ``test_autoscaling_e2e.py`` on a compressed clock.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import torch
from botocore.exceptions import ClientError
from tests.integration.support.endpoints import serve
from tests.integration.support.roles import service_role

from kennel.ml.artifact import ArtifactMeta, package_model, write_model_dir
from kennel.ml.models import ModelConfig, build_model
from kennel.ml.transforms import Preprocess

ACCOUNT = "000000000000"


@pytest.fixture(scope="module", autouse=True)
def _sagemaker_role(cloud) -> None:
    service_role(cloud, "S")  # SageMaker refuses a role that is missing or does not trust it


NS, DIM = "sagemaker", "sagemaker:variant:DesiredInstanceCount"
PREDEFINED = {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}
INVALID = "ValidationException"


def tiny_model(root: Path) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", num_classes=3, head_hidden=(8,))
    meta = ArtifactMeta(cfg, Preprocess(image_size=32), ["1.A", "2.B", "3.C"], ["A", "B", "C"])
    return package_model(write_model_dir(root / "model", build_model(cfg), meta), root / "model.tar.gz")


def fails(call, **kwargs) -> dict:
    with pytest.raises(ClientError) as failed:
        call(**kwargs)
    return failed.value.response["Error"]


def until(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def pick(mapping: dict, *names: str) -> tuple:
    return tuple(map(mapping.get, names))


class Target:
    """One endpoint variant as a scalable target, with the calls these tests repeat."""

    def __init__(self, aas, endpoint: str, variant: str = "AllTraffic") -> None:
        self.aas, self.endpoint = aas, endpoint
        self.resource = f"endpoint/{endpoint}/variant/{variant}"
        self.key = {"ServiceNamespace": NS, "ResourceId": self.resource, "ScalableDimension": DIM}

    def register(self, **kwargs) -> dict:
        return self.aas.register_scalable_target(**self.key, **kwargs)

    def deregister(self) -> None:
        self.aas.deregister_scalable_target(**self.key)

    def described(self) -> list[dict]:
        found = self.aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[self.resource])
        return found["ScalableTargets"]

    def tracking(self, name: str, **config) -> dict:
        return self.aas.put_scaling_policy(
            PolicyName=name, **self.key, PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=config,
        )  # fmt: skip

    def stepping(self, name: str, **config) -> dict:
        return self.aas.put_scaling_policy(
            PolicyName=name, **self.key, PolicyType="StepScaling", StepScalingPolicyConfiguration=config
        )

    def policies(self, **kwargs) -> dict:
        return self.aas.describe_scaling_policies(ServiceNamespace=NS, ResourceId=self.resource, **kwargs)

    def schedule(self, name: str, schedule: str, **action) -> dict:
        return self.aas.put_scheduled_action(
            ScheduledActionName=name, **self.key, Schedule=schedule, ScalableTargetAction=action
        )

    def activities(self, **kwargs) -> list[dict]:
        found = self.aas.describe_scaling_activities(ServiceNamespace=NS, ResourceId=self.resource, **kwargs)
        return found["ScalingActivities"]


@pytest.fixture(scope="module")
def endpoint(cloud, tmp_path_factory: pytest.TempPathFactory) -> str:
    name = f"aas-{uuid.uuid4().hex[:6]}"
    sm = cloud.client("sagemaker")
    container = {
        "Image": "pytorch-inference:2.0-cpu",
        "ModelDataUrl": str(tiny_model(tmp_path_factory.mktemp("a"))),
    }
    serve(sm, name, container, role=f"arn:aws:iam::{ACCOUNT}:role/S", delay=0.5, attempts=240)
    yield name
    target = Target(cloud.client("application-autoscaling"), name)
    if target.described():
        target.deregister()
    sm.delete_endpoint(EndpointName=name)


@pytest.fixture
def target(cloud, endpoint) -> Target:
    return Target(cloud.client("application-autoscaling"), endpoint)


def test_registration_is_validated_like_aws(target, endpoint) -> None:
    register = target.aas.register_scalable_target
    wrong = {**target.key, "ScalableDimension": "ecs:service:DesiredCount"}
    unsupported = "Unsupported service namespace, resource type or scalable dimension"
    assert fails(register, **wrong, MinCapacity=1, MaxCapacity=2) == {"Code": INVALID, "Message": unsupported}
    cut = {**target.key, "ResourceId": f"endpoint/{endpoint}"}
    assert fails(register, **cut, MinCapacity=1, MaxCapacity=2)["Message"] == unsupported
    ecs = {
        "ServiceNamespace": "ecs",
        "ResourceId": "service/c/s",
        "ScalableDimension": "ecs:service:DesiredCount",
    }
    refused = fails(register, **ecs, MinCapacity=1, MaxCapacity=2)["Message"]
    assert "SageMaker endpoint variants only" in refused
    missing = fails(Target(target.aas, "no-such-endpoint").register, MinCapacity=1, MaxCapacity=2)
    assert missing["Code"] == INVALID and "no-such-endpoint does not exist" in missing["Message"]
    no_variant = fails(Target(target.aas, endpoint, "Nope").register, MinCapacity=1, MaxCapacity=2)
    assert "variant Nope does not exist" in no_variant["Message"]
    assert "required" in fails(target.register, MinCapacity=1)["Message"]
    inverted = fails(target.register, MinCapacity=3, MaxCapacity=2)
    assert inverted["Message"] == "Minimum capacity cannot be greater than maximum capacity"
    assert target.described() == []


def test_register_describe_reregister_deregister(target) -> None:
    arn = target.register(MinCapacity=1, MaxCapacity=2)["ScalableTargetARN"]
    assert arn.startswith(f"arn:aws:application-autoscaling:us-east-1:{ACCOUNT}:scalable-target/")
    suspend = {"DynamicScalingInSuspended": True}
    assert target.register(MaxCapacity=3, SuspendedState=suspend)["ScalableTargetARN"] == arn
    (shown,) = target.described()
    assert pick(shown, "MinCapacity", "MaxCapacity", "ScalableTargetARN") == (
        1,
        3,
        arn,
    )  # only what was given
    assert shown["SuspendedState"] == {
        "DynamicScalingInSuspended": True, "DynamicScalingOutSuspended": False,
        "ScheduledScalingSuspended": False,
    }  # fmt: skip
    assert shown["RoleARN"] == (
        f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )
    assert shown["CreationTime"].tzinfo is not None
    assert target.aas.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"] == []
    limit = fails(target.aas.describe_scalable_targets, ServiceNamespace=NS, MaxResults=51)
    assert limit["Code"] == INVALID and "less than or equal to 50" in limit["Message"]
    target.deregister()
    gone = fails(target.aas.deregister_scalable_target, **target.key)
    assert gone == {"Code": "ObjectNotFoundException", "Message": (
        f"No scalable target found for service namespace: sagemaker, resource ID: {target.resource}, "
        f"scalable dimension: {DIM}")}  # fmt: skip


def test_target_tracking_creates_managed_alarms_as_aws_names_them(target, cloud, endpoint) -> None:
    cw = cloud.client("cloudwatch")
    orphan = fails(target.tracking, name="p", TargetValue=20.0, PredefinedMetricSpecification=PREDEFINED)
    assert orphan["Code"] == "ObjectNotFoundException"
    assert orphan["Message"].startswith("No scalable target registered for service namespace: sagemaker")
    target.register(MinCapacity=1, MaxCapacity=3)
    config = {"TargetValue": 20.0, "PredefinedMetricSpecification": PREDEFINED, "ScaleInCooldown": 120}
    put = target.tracking("invocations", **config)
    assert put["PolicyARN"].startswith(f"arn:aws:autoscaling:us-east-1:{ACCOUNT}:scalingPolicy:")
    assert put["PolicyARN"].endswith(f":resource/sagemaker/{target.resource}:policyName/invocations")
    high, low = put["Alarms"]
    prefix = f"TargetTracking-{target.resource}-Alarm"
    assert high["AlarmName"].startswith(prefix + "High-") and low["AlarmName"].startswith(prefix + "Low-")
    assert high["AlarmARN"] == f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{high['AlarmName']}"
    alarms = {a["AlarmName"]: a for a in cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]}
    up, down = alarms[high["AlarmName"]], alarms[low["AlarmName"]]
    metric = ("Namespace", "MetricName", "Statistic", "Period")
    assert pick(up, *metric) == pick(down, *metric) == ("AWS/SageMaker", "InvocationsPerInstance", "Sum", 60)
    assert {d["Name"]: d["Value"] for d in up["Dimensions"]} == {
        "EndpointName": endpoint,
        "VariantName": "AllTraffic",
    }
    window = ("EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator")
    assert pick(up, *window) == (3, 3, 20.0, "GreaterThanThreshold")
    assert pick(down, *window) == (15, 15, 18.0, "LessThanThreshold")
    assert pick(up, "AlarmActions", "StateValue") == ([put["PolicyARN"]], "INSUFFICIENT_DATA")
    assert up["AlarmDescription"].startswith("DO NOT EDIT OR DELETE.")
    plain = {"MetricName": "X", "Namespace": "Y", "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1,
             "Threshold": 1.0, "ComparisonOperator": "GreaterThanThreshold"}  # fmt: skip
    edit = fails(cw.put_metric_alarm, AlarmName=high["AlarmName"], **plain)
    assert (
        edit["Code"] == "InvalidParameterValue" and "managed by Application Auto Scaling" in edit["Message"]
    )
    # An update keeps the alarm names; DisableScaleIn removes the low alarm.
    config |= {"TargetValue": 30.0, "DisableScaleIn": True}
    again = target.tracking("invocations", **config)
    assert again["PolicyARN"] == put["PolicyARN"] and again["Alarms"] == [high]
    shown = cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"]
    assert [(a["AlarmName"], a["Threshold"]) for a in shown] == [(high["AlarmName"], 30.0)]
    (policy,) = target.policies(PolicyNames=["invocations"])["ScalingPolicies"]
    assert policy["TargetTrackingScalingPolicyConfiguration"] == config and policy["Alarms"] == [high]
    target.aas.delete_scaling_policy(PolicyName="invocations", **target.key)
    assert cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"] == []
    missing = fails(target.aas.delete_scaling_policy, PolicyName="invocations", **target.key)
    assert missing["Message"].endswith("policy name: invocations")


def test_customized_metrics_and_policy_validation(target, cloud, endpoint) -> None:
    cw = cloud.client("cloudwatch")
    target.register(MinCapacity=1, MaxCapacity=3)
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}]
    latency = {"MetricName": "ModelLatency", "Namespace": "AWS/SageMaker", "Statistic": "Average",
               "Unit": "Microseconds", "Dimensions": dims}  # fmt: skip
    put = target.tracking("latency", TargetValue=50000.0, CustomizedMetricSpecification=latency)
    (shown,) = cw.describe_alarms(AlarmNames=[put["Alarms"][0]["AlarmName"]])["MetricAlarms"]
    expected = ("ModelLatency", "Average", "Microseconds", 60)
    assert pick(shown, "MetricName", "Statistic", "Unit", "Period") == expected
    invocations = {"Namespace": "AWS/SageMaker", "MetricName": "Invocations", "Dimensions": dims}
    stat = {"Metric": invocations, "Stat": "Sum"}
    math = {"Metrics": [{"Id": "m1", "MetricStat": stat, "ReturnData": False},
                        {"Id": "e1", "Expression": "m1 / 2", "Label": "half"}]}  # fmt: skip
    put = target.tracking("math", TargetValue=40.0, CustomizedMetricSpecification=math)
    (shown,) = cw.describe_alarms(AlarmNames=[put["Alarms"][0]["AlarmName"]])["MetricAlarms"]
    assert [q["Id"] for q in shown["Metrics"]] == ["m1", "e1"] and shown["Metrics"][0]["MetricStat"][
        "Period"
    ] == 60
    ecs_cpu = {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}
    bad_tracking = [
        {"TargetValue": 1.0},
        {
            "TargetValue": 1.0,
            "PredefinedMetricSpecification": PREDEFINED,
            "CustomizedMetricSpecification": latency,
        },
        {"TargetValue": 1.0, "PredefinedMetricSpecification": ecs_cpu},
        {"TargetValue": 0.0, "PredefinedMetricSpecification": PREDEFINED},
        {"TargetValue": 1.0, "CustomizedMetricSpecification": {"MetricName": "X"}},
    ]
    for config in bad_tracking:
        assert fails(target.tracking, name="bad", **config)["Code"] == INVALID, config
    gap = [{"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1},
           {"MetricIntervalLowerBound": 20, "ScalingAdjustment": 2}]  # fmt: skip
    one = [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    bad_steps = [
        {"AdjustmentType": "ChangeInCapacity", "StepAdjustments": gap},
        {"AdjustmentType": "ChangeInCapacity", "MinAdjustmentMagnitude": 2, "StepAdjustments": one},
        {"StepAdjustments": one},
    ]
    for config in bad_steps:
        assert fails(target.stepping, name="bad", **config)["Code"] == INVALID, config
    page = target.policies(MaxResults=1)
    rest = target.policies(NextToken=page["NextToken"])["ScalingPolicies"]
    assert len(page["ScalingPolicies"]) == 1
    assert {p["PolicyName"] for p in page["ScalingPolicies"] + rest} == {"latency", "math"}
    assert fails(target.aas.describe_scaling_policies, ServiceNamespace=NS, MaxResults=11)["Code"] == INVALID
    garbage = fails(target.aas.describe_scaling_policies, ServiceNamespace=NS, NextToken="garbage")
    assert garbage["Code"] == "InvalidNextTokenException"
    assert "at least 1" in fails(target.register, MinCapacity=0)["Message"]  # SageMaker target tracking
    target.deregister()  # takes its policies and their alarms along
    assert cw.describe_alarms(AlarmNamePrefix=f"TargetTracking-{target.resource}-")["MetricAlarms"] == []
    assert target.policies()["ScalingPolicies"] == []


def test_scheduled_actions_api(target) -> None:
    target.register(MinCapacity=1, MaxCapacity=2)
    target.aas.put_scheduled_action(
        ScheduledActionName="nightly", **target.key, Schedule="cron(0 2 * * ? *)", Timezone="Europe/Paris",
        ScalableTargetAction={"MinCapacity": 1, "MaxCapacity": 1},
    )  # fmt: skip
    target.schedule("every-hour", "rate(1 hour)", MaxCapacity=2)
    bad = [("cron(0 2 * * * *)", None, 1, None), ("rate(0 hours)", None, 1, None),
           ("tomorrow", None, 1, None), ("at(2030-02-30T00:00:00)", None, 1, None),
           ("rate(1 day)", "Nowhere/City", 1, None), ("rate(1 day)", None, 3, 2)]  # fmt: skip
    for schedule, zone, low, high in bad:
        action = {k: v for k, v in (("MinCapacity", low), ("MaxCapacity", high)) if v is not None}
        extra = {"Timezone": zone} if zone else {}
        refused = fails(target.aas.put_scheduled_action, ScheduledActionName="bad", **target.key,
                        Schedule=schedule, ScalableTargetAction=action, **extra)  # fmt: skip
        assert refused["Code"] == INVALID, schedule
    listed = target.aas.describe_scheduled_actions(ServiceNamespace=NS, ResourceId=target.resource)
    by_name = {a["ScheduledActionName"]: a for a in listed["ScheduledActions"]}
    assert set(by_name) == {"nightly", "every-hour"}
    nightly = by_name["nightly"]
    assert pick(nightly, "Schedule", "Timezone") == ("cron(0 2 * * ? *)", "Europe/Paris")
    assert nightly["ScalableTargetAction"] == {"MinCapacity": 1, "MaxCapacity": 1}
    assert nightly["ScheduledActionARN"].endswith(
        f":resource/sagemaker/{target.resource}:scheduledActionName/nightly"
    )
    named = target.aas.describe_scheduled_actions(ServiceNamespace=NS, ScheduledActionNames=["every-hour"])
    assert [a["ScheduledActionName"] for a in named["ScheduledActions"]] == ["every-hour"]
    target.aas.delete_scheduled_action(ScheduledActionName="nightly", **target.key)
    missing = fails(target.aas.delete_scheduled_action, ScheduledActionName="nightly", **target.key)
    assert missing["Code"] == "ObjectNotFoundException"
    assert missing["Message"].endswith("scheduled action name: nightly")
    target.deregister()
    left = target.aas.describe_scheduled_actions(ServiceNamespace=NS, ResourceId=target.resource)
    assert left["ScheduledActions"] == []


def test_only_permitted_callers_may_scale(target, cloud) -> None:
    iam = cloud.client("iam")
    user = f"viewer-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    secret = iam.create_access_key(UserName=user)["AccessKey"]
    read = {"Effect": "Allow", "Resource": "*", "Action": ["application-autoscaling:Describe*"]}
    policy = {"Version": "2012-10-17", "Statement": [read]}
    iam.put_user_policy(UserName=user, PolicyName="read", PolicyDocument=json.dumps(policy))
    aas = cloud.client("application-autoscaling", key=secret["AccessKeyId"], secret=secret["SecretAccessKey"])
    viewer = Target(aas, target.endpoint)
    assert viewer.described() == []
    denied = fails(viewer.register, MinCapacity=1, MaxCapacity=2)
    assert denied["Code"] == "AccessDeniedException"
    assert "application-autoscaling:RegisterScalableTarget on resource: *" in denied["Message"]


def test_step_scaling_schedules_and_bounds_move_a_real_endpoint(target, cloud, endpoint) -> None:
    """SetAlarmState fires a step policy (1 → 2); a scheduled action lowers MaxCapacity to 1 (2 → 1 at
    once, no cooldown); the alarm firing again at the maximum is recorded as not scaled."""
    sm, cw = cloud.client("sagemaker"), cloud.client("cloudwatch")
    target.register(MinCapacity=1, MaxCapacity=2)
    plus_one = [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}]
    policy = target.stepping("step", AdjustmentType="ChangeInCapacity", Cooldown=0, StepAdjustments=plus_one)
    assert policy.get("Alarms", []) == []
    alarm = f"{endpoint}-busy"
    # TreatMissingData "ignore": the state SetAlarmState sets survives the next (empty) evaluation.
    cw.put_metric_alarm(
        AlarmName=alarm, Namespace="Custom/Test", MetricName="Busy", Statistic="Average", Period=60,
        EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="ignore", AlarmActions=[policy["PolicyARN"]],
    )  # fmt: skip
    (listed,) = target.policies(PolicyNames=["step"])["ScalingPolicies"]
    assert listed["Alarms"] == [
        {"AlarmName": alarm, "AlarmARN": f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{alarm}"}
    ]

    def variant() -> tuple:
        described = sm.describe_endpoint(EndpointName=endpoint)
        counts = pick(described["ProductionVariants"][0], "CurrentInstanceCount", "DesiredInstanceCount")
        return (described["EndpointStatus"], *counts)

    try:
        cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="testing step scaling")
        until(lambda: variant() == ("InService", 2, 2), 120, "the step scale-out to 2 instances")
        out = until(
            lambda: [a for a in target.activities() if a["StatusCode"] == "Successful"], 10, "success"
        )[0]
        assert out["Description"] == "Setting desired instance count to 2."
        assert out["Cause"] == f"monitor alarm {alarm} in state ALARM triggered policy step"
        assert out["StatusMessage"] == (
            "Successfully set desired instance count to 2. Change successfully fulfilled by sagemaker."
        )
        assert out["EndTime"] >= out["StartTime"]
        # A scheduled action already due lowers the maximum; the capacity follows at once.
        target.schedule("shrink", "at(2000-01-01T00:00:00)", MaxCapacity=1)
        until(lambda: variant() == ("InService", 1, 1), 60, "the scheduled scale-in to 1 instance")
        assert pick(target.described()[0], "MinCapacity", "MaxCapacity") == (1, 1)
        causes = [(a["Description"], a["Cause"]) for a in target.activities()]
        shrink = "scheduled action name shrink was triggered"
        assert ("Setting min capacity to 1 and max capacity to 1", shrink) in causes
        assert ("Setting desired instance count to 1.", shrink) in causes
        # The alarm fires again at the maximum: a not-scaled activity, listed only when asked for.
        cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="still busy")
        at_max = [{"Code": "AlreadyAtMaxCapacity", "MaxCapacity": 1}]

        def not_scaled() -> list[dict]:
            listed = target.activities(IncludeNotScaledActivities=True)
            return [a for a in listed if a.get("NotScaledReasons") == at_max]

        record = until(not_scaled, 15, "a not-scaled activity at the new maximum")[0]
        assert pick(record, "StatusCode", "Description") == (
            "Failed",
            "Attempting to scale due to alarm triggered",
        )
        assert not any(a.get("NotScaledReasons") for a in target.activities())
        first = target.aas.describe_scaling_activities(
            ServiceNamespace=NS, ResourceId=target.resource, MaxResults=1
        )
        assert len(first["ScalingActivities"]) == 1 and first["NextToken"]
    finally:
        cw.delete_alarms(AlarmNames=[alarm])
        target.deregister()


def test_cloudwatch_alarm_api(cloud) -> None:
    cw = cloud.client("cloudwatch")
    prefix = f"api-{uuid.uuid4().hex[:6]}-"
    base = {"Namespace": "Custom/Api", "MetricName": "Depth", "Statistic": "Maximum", "Period": 60,
            "EvaluationPeriods": 3, "Threshold": 5.0,
            "ComparisonOperator": "GreaterThanThreshold"}  # fmt: skip
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT}:t"
    for i in range(3):
        cw.put_metric_alarm(AlarmName=f"{prefix}{i}", **base, AlarmActions=[f"{topic}{i}"])
    first = cw.describe_alarms(AlarmNamePrefix=prefix, MaxRecords=2)
    assert [a["AlarmName"] for a in first["MetricAlarms"]] == [f"{prefix}0", f"{prefix}1"]
    rest = cw.describe_alarms(AlarmNamePrefix=prefix, NextToken=first["NextToken"])
    assert [a["AlarmName"] for a in rest["MetricAlarms"]] == [f"{prefix}2"] and "NextToken" not in rest
    shown = first["MetricAlarms"][0]
    assert pick(shown, "StateValue", "StateReason") == (
        "INSUFFICIENT_DATA",
        "Unchecked: Initial alarm creation",
    )
    assert shown["AlarmArn"] == f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{prefix}0"
    by_action = cw.describe_alarms(ActionPrefix=f"{topic}1")["MetricAlarms"]
    assert [a["AlarmName"] for a in by_action] == [f"{prefix}1"]
    cw.set_alarm_state(
        AlarmName=f"{prefix}1", StateValue="ALARM", StateReason="manual", StateReasonData='{"x": 1}'
    )
    alarmed = cw.describe_alarms(AlarmNamePrefix=prefix, StateValue="ALARM")["MetricAlarms"]
    assert [(a["AlarmName"], a["StateReason"]) for a in alarmed] == [(f"{prefix}1", "manual")]
    assert cw.describe_alarms(AlarmNamePrefix=prefix, AlarmTypes=["CompositeAlarm"])["MetricAlarms"] == []
    invalid = [
        ({"ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold"}, "InvalidParameterValue"),
        ({"DatapointsToAlarm": 4}, "InvalidParameterValue"),
        ({"Period": 45}, "InvalidParameterValue"),
        ({"TreatMissingData": "sometimes"}, "InvalidParameterValue"),
        ({"ExtendedStatistic": "p90"}, "InvalidParameterCombination"),
    ]
    for change, code in invalid:
        assert fails(cw.put_metric_alarm, AlarmName=f"{prefix}bad", **(base | change))["Code"] == code, change
    bad_json = fails(cw.set_alarm_state, AlarmName=f"{prefix}1", StateValue="OK", StateReason="x",
                     StateReasonData="{not json")  # fmt: skip
    assert bad_json["Code"] == "InvalidFormat"
    unknown = fails(cw.set_alarm_state, AlarmName=f"{prefix}nope", StateValue="OK", StateReason="x")
    assert unknown["Code"] == "ResourceNotFound"
    assert fails(cw.delete_alarms, AlarmNames=[f"{prefix}0", f"{prefix}nope"])["Code"] == "ResourceNotFound"
    cw.delete_alarms(AlarmNames=[f"{prefix}{i}" for i in range(3)])
    assert cw.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"] == []


def test_scalable_variant_keeps_a_warm_standby_for_fast_scale_out(cloud, target, endpoint) -> None:
    """While a tracked variant may grow, a healthy unrouted instance waits; a scale-out adopts it."""
    sm, logs = cloud.client("sagemaker"), cloud.client("logs")
    group = f"/aws/sagemaker/Endpoints/{endpoint}"

    def count(pattern: str) -> int:
        try:
            return len(logs.filter_log_events(logGroupName=group, filterPattern=pattern)["events"])
        except ClientError:
            return 0

    # Earlier tests on this endpoint may have had standbys of their own: count only new ones.
    standbys_before, adoptions_before = count('"warm standby"'), count('"adopted from standby"')
    target.register(MinCapacity=1, MaxCapacity=2)
    target.tracking(
        "standby-check",
        TargetValue=1000.0,
        PredefinedMetricSpecification={"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
    )
    until(lambda: count('"warm standby"') > standbys_before, 90, "a warm standby instance")
    assert sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    started = time.monotonic()
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 2}],
    )

    def two_serving() -> bool:
        described = sm.describe_endpoint(EndpointName=endpoint)
        return (
            described["EndpointStatus"] == "InService"
            and described["ProductionVariants"][0]["CurrentInstanceCount"] == 2
        )

    until(two_serving, 30, "two instances serving")
    elapsed = time.monotonic() - started
    until(
        lambda: count('"adopted from standby"') > adoptions_before, 15, "the adoption in the endpoint's log"
    )
    assert elapsed < 3.0, elapsed  # adopted, not started from scratch
    target.deregister()
    sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 1}],
    )
    until(
        lambda: sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService", 60, "InService"
    )
