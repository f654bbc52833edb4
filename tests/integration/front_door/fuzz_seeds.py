"""The SDK calls whose requests seed the fuzz campaign, per wire protocol: (client, method, parameters).

Chosen to reach parsing, validation and the providers without starting compute: functions are never
valid (the zip is not a zip), endpoints never find a model, and no training job is asked for.
"""

from __future__ import annotations

import json
import time

ACCOUNT = "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/fuzz-role"
MANAGED = f"arn:aws:iam::{ACCOUNT}:policy/fuzz-policy"
FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:fuzz-fn"
TARGET = {"ServiceNamespace": "sagemaker", "ResourceId": "endpoint/fuzz-ep/variant/v",
          "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}  # fmt: skip
_CONDITION = {"StringLike": {"s3:prefix": ["a/*"]}, "NumericLessThan": {"s3:max-keys": "10"}}
_STATEMENT = {
    "Effect": "Allow",
    "Action": ["s3:GetObject"],
    "Resource": ["arn:aws:s3:::b/*"],
    "Condition": _CONDITION,
}
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [_STATEMENT]})
_TRUSTED = {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [_TRUSTED]})

Call = tuple[str, str, dict]


def seed_calls() -> dict[str, list[Call]]:
    now = time.time()
    tags = [{"Key": "team", "Value": "ml"}]
    context = [{"ContextKeyName": "s3:max-keys", "ContextKeyValues": ["5"], "ContextKeyType": "numeric"}]
    variant = {
        "VariantName": "v",
        "ModelName": "fuzz-model",
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    metric = {"Namespace": "Fuzz", "MetricName": "m", "Dimensions": [{"Name": "a", "Value": "b"}]}
    predefined = {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}
    tracking = {"TargetValue": 70.0, "ScaleInCooldown": 60, "PredefinedMetricSpecification": predefined}
    return {
        "json": [
            ("logs", "describe_log_groups", {"logGroupNamePrefix": "/fuzz", "limit": 5}),
            ("logs", "create_log_group", {"logGroupName": "/fuzz/g", "tags": {"a": "b"}}),
            (
                "logs",
                "put_log_events",
                {
                    "logGroupName": "/fuzz/g",
                    "logStreamName": "s",
                    "logEvents": [{"timestamp": int(now * 1000), "message": '{"a": 1}'}],
                },
            ),
            (
                "logs",
                "filter_log_events",
                {"logGroupName": "/fuzz/g", "filterPattern": "{ $.a = 1 }", "limit": 10},
            ),
            ("logs", "describe_log_streams", {"logGroupName": "/fuzz/g", "orderBy": "LastEventTime"}),
            (
                "logs",
                "get_log_events",
                {
                    "logGroupName": "/fuzz/g",
                    "logStreamName": "s",
                    "startFromHead": True,
                    "nextToken": "f/123",
                },
            ),
            ("logs", "put_retention_policy", {"logGroupName": "/fuzz/g", "retentionInDays": 7}),
            ("sagemaker", "list_endpoints", {"MaxResults": 5, "NameContains": "dogs", "SortBy": "Name"}),
            ("sagemaker", "describe_endpoint", {"EndpointName": "nope"}),
            ("sagemaker", "list_models", {"MaxResults": 5, "NextToken": "abc"}),
            (
                "sagemaker",
                "create_model",
                {
                    "ModelName": "fuzz-model",
                    "ExecutionRoleArn": ROLE,
                    "PrimaryContainer": {
                        "Image": "kennel",
                        "ModelDataUrl": "s3://fuzz-bucket/none.tar.gz",
                        "Environment": {"A": "1"},
                    },
                },
            ),
            (
                "sagemaker",
                "create_endpoint_config",
                {"EndpointConfigName": "fuzz-config", "ProductionVariants": [variant]},
            ),
            (
                "sagemaker",
                "create_endpoint",
                {"EndpointName": "fuzz-ep", "EndpointConfigName": "fuzz-config"},
            ),
            (
                "sagemaker",
                "update_endpoint_weights_and_capacities",
                {
                    "EndpointName": "fuzz-ep",
                    "DesiredWeightsAndCapacities": [
                        {"VariantName": "v", "DesiredWeight": 1.0, "DesiredInstanceCount": 2}
                    ],
                },
            ),
            (
                "application-autoscaling",
                "describe_scalable_targets",
                {"ServiceNamespace": "sagemaker", "MaxResults": 5, "ResourceIds": [TARGET["ResourceId"]]},
            ),
            (
                "application-autoscaling",
                "register_scalable_target",
                {**TARGET, "MinCapacity": 1, "MaxCapacity": 4},
            ),
            (
                "application-autoscaling",
                "put_scaling_policy",
                {
                    **TARGET,
                    "PolicyName": "p",
                    "PolicyType": "TargetTrackingScaling",
                    "TargetTrackingScalingPolicyConfiguration": tracking,
                },
            ),
            (
                "application-autoscaling",
                "put_scheduled_action",
                {
                    **TARGET,
                    "ScheduledActionName": "s",
                    "Schedule": "cron(0 * * * ? *)",
                    "ScalableTargetAction": {"MinCapacity": 1},
                },
            ),
            (
                "cloudwatch",
                "put_metric_data",
                {
                    "Namespace": "Fuzz",
                    "MetricData": [
                        {
                            "MetricName": "m",
                            "Value": 1.0,
                            "Unit": "Count",
                            "Dimensions": [{"Name": "a", "Value": "b"}],
                        }
                    ],
                },
            ),
            (
                "cloudwatch",
                "get_metric_data",
                {
                    "StartTime": now - 600,
                    "EndTime": now,
                    "MetricDataQueries": [
                        {"Id": "e", "Expression": "SUM(METRICS())*2"},
                        {"Id": "m", "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}},
                    ],
                },
            ),
            (
                "cloudwatch",
                "get_metric_statistics",
                {
                    **metric,
                    "StartTime": now - 600,
                    "EndTime": now,
                    "Period": 60,
                    "Statistics": ["Average"],
                    "ExtendedStatistics": ["p99"],
                },
            ),
            (
                "cloudwatch",
                "put_metric_alarm",
                {
                    **metric,
                    "AlarmName": "fuzz-alarm",
                    "Statistic": "Average",
                    "Period": 60,
                    "EvaluationPeriods": 1,
                    "Threshold": 1.0,
                    "ComparisonOperator": "GreaterThanThreshold",
                },
            ),
            (
                "cloudwatch",
                "set_alarm_state",
                {
                    "AlarmName": "fuzz-alarm",
                    "StateValue": "ALARM",
                    "StateReason": "r",
                    "StateReasonData": '{"a": 1}',
                },
            ),
            ("cloudwatch", "describe_alarms", {"AlarmNamePrefix": "fuzz", "MaxRecords": 5}),
        ],
        "query": [
            ("iam", "get_user", {"UserName": "fuzz-user"}),
            ("iam", "list_users", {"PathPrefix": "/", "MaxItems": 5}),
            ("iam", "create_user", {"UserName": "fuzz-user", "Tags": tags}),
            ("iam", "tag_user", {"UserName": "fuzz-user", "Tags": tags * 2}),
            (
                "iam",
                "put_user_policy",
                {"UserName": "fuzz-user", "PolicyName": "p", "PolicyDocument": POLICY},
            ),
            ("iam", "create_policy", {"PolicyName": "fuzz-policy", "PolicyDocument": POLICY}),
            (
                "iam",
                "create_policy_version",
                {"PolicyArn": MANAGED, "PolicyDocument": POLICY, "SetAsDefault": True},
            ),
            ("iam", "attach_user_policy", {"UserName": "fuzz-user", "PolicyArn": MANAGED}),
            (
                "iam",
                "put_user_permissions_boundary",
                {"UserName": "fuzz-user", "PermissionsBoundary": MANAGED},
            ),
            (
                "iam",
                "create_role",
                {"RoleName": "fuzz-role", "AssumeRolePolicyDocument": TRUST, "MaxSessionDuration": 3600},
            ),
            ("iam", "update_assume_role_policy", {"RoleName": "fuzz-role", "PolicyDocument": TRUST}),
            ("iam", "generate_service_last_accessed_details", {"Arn": ROLE, "Granularity": "ACTION_LEVEL"}),
            (
                "iam",
                "simulate_principal_policy",
                {
                    "PolicySourceArn": ROLE,
                    "ActionNames": ["s3:GetObject"],
                    "ResourceArns": ["arn:aws:s3:::b/a/x"],
                    "ContextEntries": context,
                    "PolicyInputList": [POLICY],
                },
            ),
            ("sts", "get_caller_identity", {}),
            ("sts", "get_session_token", {"DurationSeconds": 900}),
            (
                "sts",
                "assume_role",
                {
                    "RoleArn": ROLE,
                    "RoleSessionName": "s",
                    "DurationSeconds": 900,
                    "Policy": POLICY,
                    "PolicyArns": [{"arn": MANAGED}],
                    "Tags": tags,
                },
            ),
        ],
        "rest-json": [
            ("lambda", "list_functions", {"MaxItems": 5}),
            ("lambda", "get_function", {"FunctionName": "fuzz-fn", "Qualifier": "1"}),
            ("lambda", "get_function_configuration", {"FunctionName": FUNCTION}),
            (
                "lambda",
                "invoke",
                {
                    "FunctionName": "fuzz-fn",
                    "Payload": b'{"a": [1, 2]}',
                    "InvocationType": "Event",
                    "ClientContext": "eyJhIjogMX0=",
                },
            ),
            (
                "lambda",
                "put_function_concurrency",
                {"FunctionName": "fuzz-fn", "ReservedConcurrentExecutions": 5},
            ),
            ("lambda", "tag_resource", {"Resource": FUNCTION, "Tags": {"a": "b"}}),
            (
                "lambda",
                "add_permission",
                {
                    "FunctionName": "fuzz-fn",
                    "StatementId": "s",
                    "Action": "lambda:InvokeFunction",
                    "Principal": "s3.amazonaws.com",
                },
            ),
            (
                "lambda",
                "create_function",
                {
                    "FunctionName": "fuzz-fn",
                    "Runtime": "python3.11",
                    "Role": ROLE,
                    "Handler": "h.h",
                    "Code": {"ZipFile": b"not a zip"},
                    "MemorySize": 128,
                    "Timeout": 3,
                },
            ),
            (
                "lambda",
                "update_function_configuration",
                {"FunctionName": "fuzz-fn", "Environment": {"Variables": {"A": "1"}}},
            ),
            (
                "lambda",
                "create_alias",
                {
                    "FunctionName": "fuzz-fn",
                    "Name": "live",
                    "FunctionVersion": "1",
                    "RoutingConfig": {"AdditionalVersionWeights": {"2": 0.5}},
                },
            ),
            (
                "lambda",
                "put_provisioned_concurrency_config",
                {"FunctionName": "fuzz-fn", "Qualifier": "live", "ProvisionedConcurrentExecutions": 2},
            ),
            (
                "lambda",
                "list_versions_by_function",
                {"FunctionName": "fuzz-fn", "MaxItems": 5, "Marker": "x"},
            ),
            (
                "lambda",
                "put_function_event_invoke_config",
                {"FunctionName": "fuzz-fn", "MaximumRetryAttempts": 1, "MaximumEventAgeInSeconds": 60},
            ),
            (
                "sagemaker-runtime",
                "invoke_endpoint",
                {"EndpointName": "nope", "Body": b'{"x": 1}', "ContentType": "application/json"},
            ),
        ],
    }
