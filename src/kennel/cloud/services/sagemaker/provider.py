"""The SageMaker provider (json 1.1): models, endpoint configs, endpoints, training and tuning jobs.

Operations on models and endpoint configs live in ``resources.py``, endpoint operations in
``endpoints.py``; both are CRUD mixins. Everything with state of its own is a composed object this
class owns and wires in ``start``: the :class:`EndpointManager` that runs instances, the endpoint
deployment state machine (``deployments.py``), training jobs and tuning jobs.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

from kennel.cloud.protocol import service_spec
from kennel.cloud.services.base import Context, Provider
from kennel.cloud.services.sagemaker.common import sagemaker_arn
from kennel.cloud.services.sagemaker.deployments import EndpointDeployments
from kennel.cloud.services.sagemaker.endpoints import EndpointsMixin
from kennel.cloud.services.sagemaker.modeldata import fetch_https, is_local, local_model_path
from kennel.cloud.services.sagemaker.resources import ResourcesMixin, read_model_data
from kennel.cloud.services.sagemaker.tags import SageMakerTags
from kennel.cloud.services.sagemaker.training import TrainingJobs
from kennel.cloud.services.sagemaker.training_wiring import build_training
from kennel.cloud.services.sagemaker.tuning import KIND as TUNING_KIND
from kennel.cloud.services.sagemaker.tuning import TuningJobs
from kennel.runtime.endpoints.artifacts import ModelDataError
from kennel.runtime.endpoints.manager import EndpointManager

log = logging.getLogger(__name__)

_KIND_OF = {
    "Model": "model", "EndpointConfig": "endpoint-config", "Endpoint": "endpoint",
    "TrainingJob": "training-job",
}  # fmt: skip
_NAME_PARAM = {
    "model": "ModelName", "endpoint-config": "EndpointConfigName", "endpoint": "EndpointName",
    "training-job": "TrainingJobName",
}  # fmt: skip
_OPERATION = re.compile(
    r"^(Create|Describe|Delete|Update|Stop)(Model|EndpointConfig|Endpoint|TrainingJob)(WeightsAndCapacities)?$"
)
_TAGGING = frozenset({"AddTags", "ListTags", "DeleteTags"})
# Tuning operations act on the tuning job named in the request (ListTrainingJobsFor... included).
_TUNING = frozenset({
    "CreateHyperParameterTuningJob", "DescribeHyperParameterTuningJob", "StopHyperParameterTuningJob",
    "ListTrainingJobsForHyperParameterTuningJob",
})  # fmt: skip


def accept_local_model_data() -> None:
    """Let ``ModelDataUrl`` name a local path or ``file://`` URL as well as ``s3://``/``https://``.

    AWS's model restricts the shape to S3 and HTTPS. Only a gateway whose settings allow local model
    data (KENNEL_ALLOW_LOCAL_MODEL_DATA) widens the compiled shape's pattern (once, in this process),
    and ``modeldata.local_model_path`` still confines such paths to the allowed directories.
    Everything else about the shape stays AWS's.
    """
    shape = service_spec("sagemaker").shape("Url")
    if shape.pattern and "file://" not in shape.pattern:
        shape.pattern = f"{shape.pattern}|file://.+|/.+"
        shape.regex = None  # recompiled from the new pattern on next use


class SageMakerProvider(ResourcesMixin, EndpointsMixin, Provider):
    service = "sagemaker"

    def __init__(self, cloud) -> None:
        super().__init__(cloud)
        self._lock = threading.Lock()  # guards the list of background threads
        self._threads: list[threading.Thread] = []
        self._closing = False
        self.manager: EndpointManager | None = None
        self.deployments: EndpointDeployments | None = None  # type: ignore[assignment]
        self.training: TrainingJobs | None = None
        self.tuning: TuningJobs | None = None
        self.tags = SageMakerTags(cloud.store, self.arn)
        if cloud.settings.allow_local_model_data:
            accept_local_model_data()

    def arn(self, kind: str, name: str) -> str:
        settings = self.cloud.settings
        return sagemaker_arn(settings.region, settings.account_id, kind, name)

    def resource_arn(self, operation: str, params: dict, ctx: Context) -> str:
        if operation in _TAGGING:
            return params.get("ResourceArn") or "*"
        if operation in _TUNING:
            name = params.get("HyperParameterTuningJobName")
            return sagemaker_arn(ctx.region, ctx.account, TUNING_KIND, name) if name else "*"
        match = _OPERATION.match(operation)
        if match is None:
            return "*"
        kind = _KIND_OF[match.group(2)]
        name = params.get(_NAME_PARAM[kind])
        return sagemaker_arn(ctx.region, ctx.account, kind, name) if name else "*"

    def start(self) -> None:
        settings = self.cloud.settings
        work = settings.state_dir / "sagemaker"
        self.manager = EndpointManager(
            work,
            max_instances=settings.max_instances,
            metric_sink=self.cloud.metrics,
            log_sink=self.cloud.logs,
            # Instance metrics have one-minute resolution on AWS; sample a few times per (scaled) minute.
            sample_interval_s=max(1.0, min(10.0, settings.time_scale_s / 6)),
            fetch_model_data=self.fetch_model_data,
            sandbox=self.cloud.sandbox,
            max_in_flight_per_instance=settings.endpoint_max_in_flight,
        )
        self.deployments = EndpointDeployments(
            self.cloud.store, self.manager, self.spawn, self.arn, self.cloud.clock
        )
        self.deployments.restore()
        self.training = build_training(self.cloud, work / "jobs")
        self.tuning = TuningJobs(
            store=self.cloud.store, region=settings.region, account=settings.account_id,
            training=self.training, require_passable=self.cloud.service_roles.require_passable,
            clock=self.cloud.clock,
        )  # fmt: skip
        self.tuning.start()

    # --- training jobs and tags: composed objects, dispatched here -----------------------------------
    def create_training_job(self, params: dict, ctx: Context) -> dict:
        return self.training.create(params, ctx)

    def describe_training_job(self, params: dict, ctx: Context) -> dict:
        return self.training.describe(params, ctx)

    def list_training_jobs(self, params: dict, ctx: Context) -> dict:
        return self.training.list(params, ctx)

    def stop_training_job(self, params: dict, ctx: Context) -> dict:
        return self.training.stop(params, ctx)

    # --- hyperparameter tuning jobs (tuning.py; trials are training jobs) ------------------------------
    def create_hyper_parameter_tuning_job(self, params: dict, ctx: Context) -> dict:
        return self.tuning.create(params, ctx)

    def describe_hyper_parameter_tuning_job(self, params: dict, ctx: Context) -> dict:
        return self.tuning.describe(params, ctx)

    def list_hyper_parameter_tuning_jobs(self, params: dict, ctx: Context) -> dict:
        return self.tuning.list(params, ctx)

    def stop_hyper_parameter_tuning_job(self, params: dict, ctx: Context) -> dict:
        return self.tuning.stop(params, ctx)

    def list_training_jobs_for_hyper_parameter_tuning_job(self, params: dict, ctx: Context) -> dict:
        return self.tuning.list_trials(params, ctx)

    def add_tags(self, params: dict, ctx: Context) -> dict:
        return self.tags.add(params)

    def list_tags(self, params: dict, ctx: Context) -> dict:
        return self.tags.list(params)

    def delete_tags(self, params: dict, ctx: Context) -> dict:
        return self.tags.delete(params)

    def fetch_model_data(self, url: str) -> Path:
        """A ModelDataUrl as a local file: s3:// downloaded once per object version, https:// fetched
        from public addresses only, a local path only inside KENNEL_ALLOW_LOCAL_MODEL_DATA."""
        settings = self.cloud.settings
        if url.startswith("s3://"):
            cache = settings.state_dir / "sagemaker" / "s3"
            return read_model_data(
                url, lambda bucket, key: self.cloud.objects.download(bucket, key, cache), ModelDataError
            )
        if url.startswith("https://"):
            return fetch_https(url, settings.state_dir / "sagemaker" / "https", ModelDataError)
        if is_local(url):
            return local_model_path(url, settings.allow_local_model_data, ModelDataError)
        raise ModelDataError(f"ModelDataUrl {url} cannot be read: model data must be s3:// or https://.")

    def spawn(self, target, *args) -> None:
        if self._closing:
            return
        thread = threading.Thread(
            target=self._guarded, args=(target, *args), daemon=True, name=f"sagemaker-{target.__name__}"
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    @staticmethod
    def _guarded(target, *args) -> None:
        try:
            target(*args)
        except Exception:  # a background step failing must be logged, not lost with its thread
            log.exception("sagemaker background task %s failed", target.__name__)

    def close(self) -> None:
        self._closing = True
        if self.tuning is not None:  # first: no trial may be launched while training shuts down
            self.tuning.close()
        if self.training is not None:
            self.training.runner.close()
        if self.manager is not None:
            self.manager.close()
        for thread in list(self._threads):
            thread.join(timeout=10)
