"""SageMaker training jobs: the API operations (Create, Describe, List, Stop).

A composed object owned by the SageMaker provider. It validates a request, checks that the caller
may pass the role (``iam:PassRole``, and the role trusts ``sagemaker.amazonaws.com``), writes the
job's row and hands the job to :class:`~.training_run.TrainingRunner`, which runs it in the
background. Every field the SageMaker SDK reads with a hard key is in DescribeTrainingJob from the
moment the job exists (``ModelArtifacts``, ``OutputDataConfig.KmsKeyId``, transitions with messages).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from kennel.cloud.errors import ValidationException
from kennel.cloud.services.base import Context
from kennel.cloud.services.sagemaker import tables as t
from kennel.cloud.services.sagemaker.common import ResourceLimitExceeded, dumps, list_page
from kennel.cloud.services.sagemaker.training_inputs import script_hyperparameter
from kennel.runtime.jobs.contract import known_image_module
from kennel.runtime.jobs.metrics import BadMetricDefinition, compile_definitions
from kennel.runtime.jobs.statuses import ACTIVE

SAGEMAKER_PRINCIPAL = "sagemaker.amazonaws.com"
# Instance types Kennel knows how to describe; any ml.* type is accepted (it runs on this machine).
_SORT = {
    "Name": lambda row: row["name"],
    "CreationTime": lambda row: row["created"],
    "Status": lambda row: row["status"],
}


def job_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:training-job/{name.lower()}"


class TrainingJobs:
    def __init__(
        self,
        *,
        store,
        region: str,
        account: str,
        max_instances: int,
        require_passable: Callable[[Context, str, str, str], Any],
        runner,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.region = region
        self.account = account
        self.max_instances = max_instances
        self.require_passable = require_passable
        self.runner = runner
        self.clock = clock

    # --- operations ----------------------------------------------------------------------------------
    def create(self, params: dict, ctx: Context | None, *, tuning_job_arn: str | None = None) -> dict:
        name = params["TrainingJobName"]
        arn = job_arn(self.region, self.account, name)
        self.validate(params)
        if ctx is not None:  # None only from launch_trial
            self.require_passable(ctx, params["RoleArn"], SAGEMAKER_PRINCIPAL, arn)
        now = self.clock()
        spec = {k: v for k, v in params.items() if k != "Tags"}
        with self.store.write() as conn:
            if conn.execute(select(t.training_jobs.c.name).where(t.training_jobs.c.name == name)).first():
                raise ValidationException(
                    f"Training job names must be unique within an AWS account and region, and a training "
                    f"job with this name already exists ({arn})"
                )
            conn.execute(
                t.training_jobs.insert().values(
                    name=name, arn=arn, created=now, modified=now, status="InProgress", secondary="Starting",
                    spec=dumps(spec), state=dumps(self.runner.initial_state(now, spec, name, self.account)),
                    tuning_job_arn=tuning_job_arn, tags=dumps(params.get("Tags", [])),
                )
            )  # fmt: skip
        self.runner.submit(name)
        return {"TrainingJobArn": arn}

    def launch_trial(self, params: dict, tuning_job_arn: str) -> dict:
        """A tuning job's trial, launched by the service: the caller's iam:PassRole for this role was
        checked when the tuning job was created (AWS checks it there, not per trial)."""
        return self.create(params, None, tuning_job_arn=tuning_job_arn)

    def validate(self, params: dict) -> None:
        algorithm = params["AlgorithmSpecification"]
        if not algorithm.get("TrainingImage") and not algorithm.get("AlgorithmName"):
            raise ValidationException("Either TrainingImage or AlgorithmName must be specified.")
        if algorithm.get("AlgorithmName"):
            raise ValidationException(
                "Kennel runs script-mode training images; AlgorithmName (marketplace algorithms) "
                "is not supported."
            )
        if algorithm.get("TrainingInputMode", "File") != "File":
            raise ValidationException(
                f"TrainingInputMode {algorithm['TrainingInputMode']} is not supported by Kennel; use File."
            )
        try:
            compile_definitions(algorithm.get("MetricDefinitions") or [])
        except BadMetricDefinition as exc:
            raise ValidationException(str(exc)) from None
        resources = params.get("ResourceConfig") or {}
        count = int(resources.get("InstanceCount") or 1)
        if count > self.max_instances:
            raise ResourceLimitExceeded(
                f"The account-level service limit '{resources.get('InstanceType', 'ml.m5.xlarge')} for "
                f"training job usage' is {self.max_instances} Instances, with current utilization of "
                f"{self.runner.instances_in_use()} Instances and a request delta of {count} Instances. "
                f"Kennel runs at most {self.max_instances} training instances at once (KENNEL_MAX_INSTANCES)."
            )
        if not script_hyperparameter(params, "sagemaker_program") and not known_image_module(
            algorithm.get("TrainingImage", "")
        ):
            raise ValidationException(
                "Kennel runs script-mode jobs: HyperParameters must name the entry point in "
                "sagemaker_program (the SageMaker SDK's estimators set it, with sagemaker_submit_directory)."
            )
        names = [channel["ChannelName"] for channel in params.get("InputDataConfig") or []]
        if len(set(names)) != len(names):
            raise ValidationException("Channel names must be unique within InputDataConfig.")
        for channel in params.get("InputDataConfig") or []:
            source = channel.get("DataSource", {}).get("S3DataSource")
            if source is None:
                raise ValidationException(
                    f"Channel {channel['ChannelName']}: Kennel reads channels from S3DataSource only."
                )
            if source.get("S3DataType", "S3Prefix") not in ("S3Prefix", "ManifestFile"):
                raise ValidationException(
                    f"Channel {channel['ChannelName']}: S3DataType {source['S3DataType']} is not supported "
                    "(S3Prefix and ManifestFile are)."
                )
            if not source["S3Uri"].startswith("s3://"):
                raise ValidationException(f"Channel {channel['ChannelName']}: S3Uri must be an s3:// URL.")
            if channel.get("InputMode", "File") != "File":
                raise ValidationException(
                    f"Channel {channel['ChannelName']}: only File input mode is supported."
                )
        output = params["OutputDataConfig"]["S3OutputPath"]
        if not output.startswith("s3://"):
            raise ValidationException("OutputDataConfig.S3OutputPath must be an s3:// URL.")

    def describe(self, params: dict, ctx: Context) -> dict:
        row = self.row(params["TrainingJobName"])
        if row is None:
            raise ValidationException("Requested resource not found.")
        return self.view(row)

    def view(self, row: dict) -> dict:
        spec = json.loads(row["spec"])
        state = json.loads(row["state"])
        output = dict(spec["OutputDataConfig"])
        output.setdefault("KmsKeyId", "")
        resources = dict(spec.get("ResourceConfig") or {})
        resources.setdefault("InstanceCount", 1)
        resources.setdefault("VolumeSizeInGB", 30)
        algorithm = dict(spec["AlgorithmSpecification"])
        algorithm.setdefault("TrainingInputMode", "File")
        out: dict[str, Any] = {
            "TrainingJobName": row["name"],
            "TrainingJobArn": row["arn"],
            "ModelArtifacts": {"S3ModelArtifacts": self.model_artifact_uri(spec, row["name"])},
            "TrainingJobStatus": row["status"],
            "SecondaryStatus": row["secondary"],
            "HyperParameters": spec.get("HyperParameters") or {},
            "AlgorithmSpecification": algorithm,
            "RoleArn": spec["RoleArn"],
            "InputDataConfig": spec.get("InputDataConfig") or [],
            "OutputDataConfig": output,
            "ResourceConfig": resources,
            "StoppingCondition": spec.get("StoppingCondition") or {"MaxRuntimeInSeconds": 86400},
            "CreationTime": row["created"],
            "LastModifiedTime": row["modified"],
            "SecondaryStatusTransitions": state.get("transitions", []),
            "EnableNetworkIsolation": spec.get("EnableNetworkIsolation", False),
            "EnableInterContainerTrafficEncryption": spec.get("EnableInterContainerTrafficEncryption", False),
            "EnableManagedSpotTraining": spec.get("EnableManagedSpotTraining", False),
        }
        if row["tuning_job_arn"]:
            out["TuningJobArn"] = row["tuning_job_arn"]
        for field, key in (("TrainingStartTime", "training_start"), ("TrainingEndTime", "training_end")):
            if state.get(key) is not None:
                out[field] = state[key]
        if state.get("training_seconds") is not None:
            out["TrainingTimeInSeconds"] = state["training_seconds"]
            out["BillableTimeInSeconds"] = state["training_seconds"]
        if state.get("failure_reason"):
            out["FailureReason"] = state["failure_reason"][:1024]
        if state.get("final_metrics"):
            out["FinalMetricDataList"] = state["final_metrics"]
        for echoed in (
            "CheckpointConfig", "DebugHookConfig", "DebugRuleConfigurations", "ProfilerConfig",
            "ProfilerRuleConfigurations", "Environment", "VpcConfig", "ExperimentConfig", "RetryStrategy",
            "TensorBoardOutputConfig",
        ):  # fmt: skip
            if spec.get(echoed):
                out[echoed] = spec[echoed]
        for key, field in (("debug_rules", "DebugRuleEvaluationStatuses"),
                           ("profiler_rules", "ProfilerRuleEvaluationStatuses")):  # fmt: skip
            if state.get(key):
                out[field] = state[key]
        if spec.get("ProfilerConfig") is not None:
            out["ProfilingStatus"] = (
                "Disabled" if spec["ProfilerConfig"].get("DisableProfiler") else "Enabled"
            )
        return out

    def model_artifact_uri(self, spec: dict, name: str) -> str:
        base = spec["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        if spec["OutputDataConfig"].get("CompressionType") == "NONE":
            return f"{base}/{name}/output/model/"
        return f"{base}/{name}/output/model.tar.gz"

    def list(self, params: dict, ctx: Context) -> dict:
        rows = self.rows()
        page, token = list_page(rows, params, sort_keys=_SORT)
        summaries = []
        for row in page:
            state = json.loads(row["state"])
            item = {
                "TrainingJobName": row["name"],
                "TrainingJobArn": row["arn"],
                "CreationTime": row["created"],
                "LastModifiedTime": row["modified"],
                "TrainingJobStatus": row["status"],
                "SecondaryStatus": row["secondary"],
            }
            if state.get("training_end") is not None:
                item["TrainingEndTime"] = state["training_end"]
            summaries.append(item)
        out: dict[str, Any] = {"TrainingJobSummaries": summaries}
        if token:
            out["NextToken"] = token
        return out

    def stop(self, params: dict, ctx: Context) -> dict:
        name = params["TrainingJobName"]
        row = self.row(name)
        if row is None:
            raise ValidationException("Requested resource not found.")
        if row["status"] not in ACTIVE:
            raise ValidationException(
                f"The request was rejected because the training job is in status {row['status']}."
            )
        self.runner.stop(name)
        return {}

    # --- rows ---------------------------------------------------------------------------------------
    def row(self, name: str) -> dict | None:
        with self.store.read() as conn:
            found = conn.execute(select(t.training_jobs).where(t.training_jobs.c.name == name)).first()
        return dict(found._mapping) if found else None

    def rows(self) -> list[dict]:
        with self.store.read() as conn:
            return [dict(r._mapping) for r in conn.execute(select(t.training_jobs))]

    def set_tags(self, name: str, tags: list) -> None:
        with self.store.write() as conn:
            conn.execute(
                update(t.training_jobs).where(t.training_jobs.c.name == name).values(tags=dumps(tags))
            )
