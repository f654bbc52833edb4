"""AWS managed policies the seeds use, under their real ARNs, with documents of the same meaning.

The documents are written for Kennel from AWS's published descriptions; the SageMaker one keeps the
structure that matters for least-privilege exercises (broad sagemaker:*, PassRole only to SageMaker,
S3 limited to SageMaker-named buckets, logs/metrics/autoscaling for endpoints).
"""

from __future__ import annotations

import json

ADMINISTRATOR_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}

AMAZON_SAGEMAKER_FULL_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "AllowAllNonAdminSageMakerActions",
            "Effect": "Allow",
            "Action": ["sagemaker:*"],
            "NotResource": [
                "arn:aws:sagemaker:*:*:domain/*",
                "arn:aws:sagemaker:*:*:user-profile/*",
                "arn:aws:sagemaker:*:*:app/*",
            ],
        },
        {
            "Sid": "AllowServicesUsedBySageMaker",
            "Effect": "Allow",
            "Action": [
                "application-autoscaling:DeleteScalingPolicy",
                "application-autoscaling:DeleteScheduledAction",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingActivities",
                "application-autoscaling:DescribeScalingPolicies",
                "application-autoscaling:DescribeScheduledActions",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:PutScheduledAction",
                "application-autoscaling:RegisterScalableTarget",
                "cloudwatch:DeleteAlarms",
                "cloudwatch:DescribeAlarms",
                "cloudwatch:GetMetricData",
                "cloudwatch:GetMetricStatistics",
                "cloudwatch:ListMetrics",
                "cloudwatch:PutMetricAlarm",
                "cloudwatch:PutMetricData",
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:DescribeLogStreams",
                "logs:GetLogEvents",
                "logs:PutLogEvents",
                "iam:ListRoles",
                "lambda:ListFunctions",
                "ecr:BatchGetImage",
                "ecr:GetAuthorizationToken",
                "ecr:GetDownloadUrlForLayer",
            ],
            "Resource": "*",
        },
        {
            "Sid": "AllowSageMakerBuckets",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": [
                "arn:aws:s3:::*SageMaker*",
                "arn:aws:s3:::*Sagemaker*",
                "arn:aws:s3:::*sagemaker*",
            ],
        },
        {
            "Sid": "AllowSageMakerBucketManagement",
            "Effect": "Allow",
            "Action": ["s3:CreateBucket", "s3:GetBucketLocation", "s3:ListBucket", "s3:ListAllMyBuckets"],
            "Resource": "*",
        },
        {
            "Sid": "AllowPassRoleToSageMaker",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": "arn:aws:iam::*:role/*",
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        },
    ],
}

AWS_LAMBDA_BASIC_EXECUTION_ROLE = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
}

AMAZON_S3_FULL_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*", "s3-object-lambda:*"], "Resource": "*"}],
}

AMAZON_S3_READ_ONLY_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*", "s3:Describe*"], "Resource": "*"}],
}

IAM_READ_ONLY_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "iam:GenerateCredentialReport",
                "iam:Get*",
                "iam:List*",
                "iam:SimulateCustomPolicy",
                "iam:SimulatePrincipalPolicy",
            ],
            "Resource": "*",
        }
    ],
}

# name → (path, description, document)
MANAGED_POLICIES: dict[str, tuple[str, str, dict]] = {
    "AdministratorAccess": ("/", "Provides full access to AWS services and resources.", ADMINISTRATOR_ACCESS),
    "AmazonSageMakerFullAccess": (
        "/",
        "Provides full access to Amazon SageMaker via the AWS Management Console and SDK.",
        AMAZON_SAGEMAKER_FULL_ACCESS,
    ),
    "AWSLambdaBasicExecutionRole": (
        "/service-role/",
        "Provides write permissions to CloudWatch Logs.",
        AWS_LAMBDA_BASIC_EXECUTION_ROLE,
    ),
    "AmazonS3FullAccess": (
        "/",
        "Provides full access to all buckets via the AWS Management Console.",
        AMAZON_S3_FULL_ACCESS,
    ),
    "AmazonS3ReadOnlyAccess": (
        "/",
        "Provides read only access to all buckets via the AWS Management Console.",
        AMAZON_S3_READ_ONLY_ACCESS,
    ),
    "IAMReadOnlyAccess": (
        "/",
        "Provides read only access to IAM via the AWS Management Console.",
        IAM_READ_ONLY_ACCESS,
    ),
}


def managed_arn(name: str) -> str:
    path = MANAGED_POLICIES[name][0]
    return f"arn:aws:iam::aws:policy{path}{name}"


def managed_document(name: str) -> str:
    return json.dumps(MANAGED_POLICIES[name][2], indent=4)
