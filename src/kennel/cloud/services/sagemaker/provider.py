"""The SageMaker provider (json 1.1): models, endpoint configs and endpoints on local instances.

Operations live in two mixins (``resources.py``: models and endpoint configs; ``endpoints.py``:
endpoints). This class owns the runtime side: the :class:`EndpointManager` that runs instances, the
sinks their logs and metrics go to, and the background threads that deploy and update endpoints.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from kennel.cloud.protocol import service_spec
from kennel.cloud.services.base import Context, Provider
from kennel.cloud.services.sagemaker.common import sagemaker_arn
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
from kennel.runtime.endpoints.metrics import NullMetricSink

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
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


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


class FileLogSink:
    """Where instance logs go when Kennel runs without its CloudWatch Logs provider: a file per stream."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def append(self, group: str, stream: str, events: Sequence[tuple[float, str]]) -> None:
        path = self.root / _UNSAFE.sub("_", group.strip("/")) / (_UNSAFE.sub("_", stream) + ".log")
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.writelines(f"{stamp:.3f} {message}\n" for stamp, message in events)


class SageMakerProvider(ResourcesMixin, EndpointsMixin, Provider):
    service = "sagemaker"

    def __init__(self, cloud) -> None:
        super().__init__(cloud)
        self._lock = threading.RLock()
        self._status: dict[str, str] = {}
        self._threads: list[threading.Thread] = []
        self._closing = False
        self.manager: EndpointManager | None = None  # type: ignore[assignment]
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
        providers = self.cloud.providers
        work = settings.state_dir / "sagemaker"
        self.manager = EndpointManager(
            work,
            max_instances=settings.max_instances,
            metric_sink=self.cloud.metrics if "cloudwatch" in providers else NullMetricSink(),
            log_sink=self.cloud.logs if "logs" in providers else FileLogSink(work / "logs"),
            # Instance metrics have one-minute resolution on AWS; sample a few times per (scaled) minute.
            sample_interval_s=max(1.0, min(10.0, settings.time_scale_s / 6)),
            fetch_model_data=self.fetch_model_data,
            sandbox=self.cloud.sandbox,
            max_in_flight_per_instance=settings.endpoint_max_in_flight,
        )
        self.restore()
        self.training = build_training(self.cloud, work / "jobs")
        self.tuning = TuningJobs(
            store=self.cloud.store, region=settings.region, account=settings.account_id,
            training=self.training, require_passable=self.cloud.service_roles.require_passable,
            clock=time.time,
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
