"""Assembles training jobs from the cloud's named parts: the sandbox (through the local engine),
the service-role check, the object store read and written as the job's role, STS credentials, and
the CloudWatch sinks. This is the one place in the training code that sees the whole cloud."""

from __future__ import annotations

import time
from pathlib import Path

from kennel.cloud.services.sagemaker.jobdata import RoleS3
from kennel.cloud.services.sagemaker.training import TrainingJobs
from kennel.cloud.services.sagemaker.training_run import TrainingRunner
from kennel.runtime.jobs.engine import LocalEngine


def build_training(cloud, root: Path) -> TrainingJobs:
    settings = cloud.settings
    identities, authorizer = cloud.identities, cloud.authorizer

    def role_s3(role_arn: str) -> RoleS3:
        role_name = role_arn.rsplit("/", 1)[-1]
        principal = identities.role_session(role_name, "SageMaker")

        def decide(action: str, resource: str, context: dict) -> bool:
            if principal is None:
                return False
            return authorizer.decide(
                principal, action, resource, region=settings.region, extra_context=context
            ).allowed

        arn = principal.arn if principal is not None else role_arn
        return RoleS3(role_arn, arn, decide, cloud.objects.client, settings.region)

    runner = TrainingRunner(
        store=cloud.store,
        root=root,
        engine=LocalEngine(cloud.sandbox),
        role_s3=role_s3,
        credentials=cloud.sts.issue,
        log_sink=cloud.logs,
        metric_sink=cloud.metrics,
        endpoint_url=settings.endpoint_url,
        region=settings.region,
        capacity=settings.max_instances,
        stop_grace_s=settings.training_stop_grace_s,
        clock=time.time,
    )
    jobs = TrainingJobs(
        store=cloud.store,
        region=settings.region,
        account=settings.account_id,
        max_instances=settings.max_instances,
        require_passable=cloud.service_roles.require_passable,
        runner=runner,
        clock=time.time,
    )
    runner.restore()
    return jobs
