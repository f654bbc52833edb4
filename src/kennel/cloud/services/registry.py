"""The service providers the gateway serves, in start-up order (one line per service)."""

from __future__ import annotations

from kennel.cloud.services.autoscaling.provider import ApplicationAutoScalingProvider
from kennel.cloud.services.cloudwatch.provider import CloudWatchProvider
from kennel.cloud.services.iam.provider import IamProvider
from kennel.cloud.services.lambda_.provider import LambdaProvider
from kennel.cloud.services.logs.provider import LogsProvider
from kennel.cloud.services.sagemaker.provider import SageMakerProvider
from kennel.cloud.services.sagemaker_runtime.provider import SageMakerRuntimeProvider
from kennel.cloud.services.sts.provider import StsProvider

PROVIDERS: list[type] = [
    IamProvider,
    StsProvider,
    LogsProvider,
    CloudWatchProvider,
    SageMakerProvider,
    SageMakerRuntimeProvider,
    LambdaProvider,
    ApplicationAutoScalingProvider,
]
