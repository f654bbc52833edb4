"""Every protocol, both directions, through real botocore clients (see ``test_protocol_harness``).

Each case calls a client with some params and has Kennel answer with a result: the params Kennel
parsed must equal what the client was given, and what the client parsed must equal the result.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from test_protocol_harness import POLICY, ROLE, T0, T1, TRUST, Harness, as_botocore_returns, body_of

CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], tuple[str, str]]] = [
    # --- query: sts, iam -------------------------------------------------------------------------
    (
        "sts",
        "get_caller_identity",
        {},
        {"UserId": "AIDAKENNEL", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/alice"},
        ("sts", "GetCallerIdentity"),
    ),
    (
        "sts",
        "assume_role",
        {
            "RoleArn": ROLE["Arn"],
            "RoleSessionName": "kennel-session",
            "DurationSeconds": 900,
            "Policy": POLICY,
            "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
            "Tags": [{"Key": "a", "Value": "b c"}],
            "TransitiveTagKeys": ["a"],
        },
        {
            "Credentials": {
                "AccessKeyId": "ASIAKENNEL",
                "SecretAccessKey": "s/e+c=r",
                "SessionToken": "tok&en<",
                "Expiration": T1,
            },
            "AssumedRoleUser": {
                "AssumedRoleId": "AROA:kennel-session",
                "Arn": "arn:aws:sts::123456789012:assumed-role/r/s",
            },
            "PackedPolicySize": 7,
            "SourceIdentity": "alice",
        },
        ("sts", "AssumeRole"),
    ),
    (
        "iam",
        "create_role",
        {
            "RoleName": "SageMakerRole",
            "Path": "/service-role/",
            "AssumeRolePolicyDocument": TRUST,
            "Description": "Role for training",
            "MaxSessionDuration": 3600,
            "Tags": ROLE["Tags"],
        },
        {"Role": ROLE},
        ("iam", "CreateRole"),
    ),
    (
        "iam",
        "get_role",
        {"RoleName": "SageMakerRole"},
        {"Role": {**ROLE, "RoleLastUsed": {"LastUsedDate": T1}}},
        ("iam", "GetRole"),
    ),
    (
        "iam",
        "list_roles",
        {"PathPrefix": "/", "Marker": "page-2", "MaxItems": 2},
        {"Roles": [ROLE, {**ROLE, "RoleName": "Other", "Tags": []}], "IsTruncated": True, "Marker": "page-3"},
        ("iam", "ListRoles"),
    ),
    ("iam", "list_roles", {}, {"Roles": [], "IsTruncated": False}, ("iam", "ListRoles")),
    (
        "iam",
        "put_role_policy",
        {"RoleName": "SageMakerRole", "PolicyName": "inline", "PolicyDocument": POLICY},
        {},
        ("iam", "PutRolePolicy"),
    ),
    (
        "iam",
        "get_role_policy",
        {"RoleName": "SageMakerRole", "PolicyName": "inline"},
        {"RoleName": "SageMakerRole", "PolicyName": "inline", "PolicyDocument": POLICY},
        ("iam", "GetRolePolicy"),
    ),
    (
        "iam",
        "simulate_principal_policy",
        {
            "PolicySourceArn": ROLE["Arn"],
            "ActionNames": ["sagemaker:CreateTrainingJob", "s3:GetObject"],
            "ResourceArns": ["*"],
            "ContextEntries": [
                {"ContextKeyName": "aws:SourceIp", "ContextKeyValues": ["10.0.0.1"], "ContextKeyType": "ip"}
            ],
        },
        {
            "EvaluationResults": [
                {
                    "EvalActionName": "s3:GetObject",
                    "EvalDecision": "allowed",
                    "EvalDecisionDetails": {
                        "IdentityPolicy": "allowed",
                        "PermissionsBoundaryPolicy": "allowed",
                    },
                    "MatchedStatements": [
                        {"SourcePolicyId": "inline", "StartPosition": {"Line": 1, "Column": 2}}
                    ],
                    "MissingContextValues": [],
                }
            ],
            "IsTruncated": False,
        },
        ("iam", "SimulatePrincipalPolicy"),
    ),
    # --- json 1.1: sagemaker, logs, application-autoscaling ---------------------------------------
    (
        "sagemaker",
        "create_endpoint_config",
        {
            "EndpointConfigName": "dogs-cfg",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "dogs",
                    "InitialInstanceCount": 2,
                    "InstanceType": "ml.m5.large",
                    "InitialVariantWeight": 1.0,
                },
                {
                    "VariantName": "Canary",
                    "ModelName": "dogs-v2",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.g4dn.xlarge",
                    "InitialVariantWeight": 0.25,
                    "ContainerStartupHealthCheckTimeoutInSeconds": 600,
                },
            ],
            "DataCaptureConfig": {
                "EnableCapture": True,
                "InitialSamplingPercentage": 50,
                "DestinationS3Uri": "s3://bucket/capture",
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            },
            "Tags": [{"Key": "project", "Value": "dogs"}],
        },
        {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/dogs-cfg"},
        ("sagemaker", "CreateEndpointConfig"),
    ),
    (
        "sagemaker",
        "describe_endpoint",
        {"EndpointName": "dogs"},
        {
            "EndpointName": "dogs",
            "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/dogs",
            "EndpointConfigName": "dogs-cfg",
            "EndpointStatus": "InService",
            "CreationTime": T0,
            "LastModifiedTime": T1,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "CurrentWeight": 1.0,
                    "DesiredWeight": 1.0,
                    "CurrentInstanceCount": 2,
                    "DesiredInstanceCount": 2,
                    "DeployedImages": [{"SpecifiedImage": "img:1", "ResolutionTime": T1}],
                }
            ],
        },
        ("sagemaker", "DescribeEndpoint"),
    ),
    (
        "sagemaker",
        "create_training_job",
        {
            "TrainingJobName": "dogs-1",
            "RoleArn": ROLE["Arn"],
            "AlgorithmSpecification": {
                "TrainingImage": "kennel/pytorch:2",
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "valid:acc", "Regex": "acc=([0-9\\.]+)"}],
            },
            "HyperParameters": {"epochs": "3", "lr": "0.001", "sagemaker_program": '"hpo.py"'},
            "InputDataConfig": [
                {
                    "ChannelName": "training",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": "s3://b/train",
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                }
            ],
            "OutputDataConfig": {"S3OutputPath": "s3://b/out"},
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
            "Environment": {"A": "1"},
        },
        {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/dogs-1"},
        ("sagemaker", "CreateTrainingJob"),
    ),
    (
        "sagemaker",
        "list_training_jobs",
        {"CreationTimeAfter": T0, "MaxResults": 10, "StatusEquals": "Completed", "SortBy": "CreationTime"},
        {
            "TrainingJobSummaries": [
                {
                    "TrainingJobName": "dogs-1",
                    "TrainingJobArn": "arn:x",
                    "CreationTime": T0,
                    "TrainingEndTime": T1,
                    "TrainingJobStatus": "Completed",
                }
            ],
            "NextToken": "n",
        },
        ("sagemaker", "ListTrainingJobs"),
    ),
    (
        "logs",
        "filter_log_events",
        {
            "logGroupName": "/aws/sagemaker/TrainingJobs",
            "logStreamNames": ["dogs-1/algo-1"],
            "startTime": 1763800000000,
            "endTime": 1763900000000,
            "filterPattern": '"acc="',
            "limit": 100,
            "interleaved": True,
        },
        {
            "events": [
                {
                    "logStreamName": "dogs-1/algo-1",
                    "timestamp": 1763800000123,
                    "message": "acc=0.91\ttab",
                    "ingestionTime": 1763800000999,
                    "eventId": "e1",
                }
            ],
            "searchedLogStreams": [{"logStreamName": "dogs-1/algo-1", "searchedCompletely": True}],
            "nextToken": "t",
        },
        ("logs", "FilterLogEvents"),
    ),
    (
        "application-autoscaling",
        "register_scalable_target",
        {
            "ServiceNamespace": "sagemaker",
            "ResourceId": "endpoint/dogs/variant/AllTraffic",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "MinCapacity": 1,
            "MaxCapacity": 4,
            "SuspendedState": {"DynamicScalingInSuspended": False},
            "Tags": {"team": "dogs"},
        },
        {"ScalableTargetARN": "arn:aws:application-autoscaling:us-east-1:123456789012:scalable-target/abc"},
        ("application-autoscaling", "RegisterScalableTarget"),
    ),
    (
        "application-autoscaling",
        "put_scaling_policy",
        {
            "PolicyName": "p",
            "ServiceNamespace": "sagemaker",
            "ResourceId": "endpoint/dogs/variant/AllTraffic",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": 70.5,
                "ScaleInCooldown": 60,
                "ScaleOutCooldown": 30,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
            },
        },
        {"PolicyARN": "arn:p", "Alarms": [{"AlarmName": "hi", "AlarmARN": "arn:a"}]},
        ("application-autoscaling", "PutScalingPolicy"),
    ),
]


@pytest.mark.parametrize(
    ("service", "method", "params", "result", "routed"),
    CASES,
    ids=[f"{c[0]}.{c[1]}-{i}" for i, c in enumerate(CASES)],
)
def test_round_trip(service: str, method: str, params: dict, result: dict, routed: tuple[str, str]) -> None:
    harness = Harness(service)
    answer = harness.call(method, params, result)
    assert harness.routed == routed
    assert harness.params == params
    assert body_of(answer) == as_botocore_returns(result)
    assert answer["ResponseMetadata"]["RequestId"] == "b6f1c2d4-0000-4000-8000-kennel000001"


def test_query_response_is_aws_shaped_xml() -> None:
    harness = Harness("sts")
    harness.call("get_caller_identity", {}, {"UserId": "u", "Account": "123456789012", "Arn": "a&b"})
    assert harness.response is not None
    text = harness.response.body.decode()
    assert '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">' in text
    assert "<GetCallerIdentityResult><UserId>u</UserId>" in text and "<Arn>a&amp;b</Arn>" in text
    assert text.endswith(
        "<ResponseMetadata><RequestId>b6f1c2d4-0000-4000-8000-kennel000001</RequestId>"
        "</ResponseMetadata></GetCallerIdentityResponse>"
    )
    assert harness.response.headers["Content-Type"] == "text/xml"


def test_iam_policy_document_arrives_decoded_and_intact() -> None:
    harness = Harness("iam")
    harness.call("put_role_policy", {"RoleName": "r", "PolicyName": "p", "PolicyDocument": POLICY}, {})
    assert harness.request is not None and b"PolicyDocument=%7B%22Version" in harness.request.body
    assert harness.params is not None and harness.params["PolicyDocument"] == POLICY
    harness.call("get_role_policy", {"RoleName": "r", "PolicyName": "p"}, {"PolicyDocument": POLICY})
    assert harness.response is not None and b"<PolicyDocument>%7B%22Version%22%3A" in harness.response.body
    encoded = quote(POLICY, safe="")  # a provider that encodes itself is not encoded twice
    answer = harness.call(
        "get_role_policy", {"RoleName": "r", "PolicyName": "p"}, {"PolicyDocument": encoded}
    )
    assert answer["PolicyDocument"] == json.loads(POLICY)


def test_json_timestamps_are_epoch_numbers_and_blobs_base64() -> None:
    harness = Harness("sagemaker")
    harness.call(
        "describe_endpoint",
        {"EndpointName": "dogs"},
        {"EndpointName": "dogs", "CreationTime": T1, "EndpointStatus": "Creating"},
    )
    assert harness.response is not None
    assert json.loads(harness.response.body)["CreationTime"] == T1.timestamp()
    assert harness.response.headers["Content-Type"] == "application/x-amz-json-1.1"
    lam = Harness("lambda")
    lam.call(
        "create_function", {"FunctionName": "f", "Role": ROLE["Arn"], "Code": {"ZipFile": b"\x00\x01"}}, {}
    )
    assert lam.request is not None and json.loads(lam.request.body)["Code"]["ZipFile"] == "AAE="
    assert lam.params == {"FunctionName": "f", "Role": ROLE["Arn"], "Code": {"ZipFile": b"\x00\x01"}}
