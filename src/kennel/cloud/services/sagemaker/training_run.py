"""Runs training jobs in the background: Starting → Downloading → Training → Uploading → Completed,
or Failed / Stopped (MaxRuntimeExceeded), with every change written to the store.

One thread per job. Downloading fetches the code (``sagemaker_submit_directory``) and every channel
as the job's role into the job's directory, once for all hosts; Training hands a :class:`JobSpec` to
the engine and watches the hosts (a failed host fails the job, StopTrainingJob and
MaxRuntimeInSeconds send SIGTERM, wait the grace period, then kill); Uploading tars what the hosts
left in ``/opt/ml/model`` and ``/opt/ml/output/data`` and writes it to S3 as the role. Log lines go to
CloudWatch Logs as they arrive, and MetricDefinitions are matched on them at the same time.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select, update

from kennel.cloud.services.sagemaker import tables as t
from kennel.cloud.services.sagemaker.common import dumps
from kennel.cloud.services.sagemaker.jobdata import JobFailure, RoleS3, clear
from kennel.cloud.services.sagemaker.training_inputs import prepare_channels, prepare_code
from kennel.cloud.services.sagemaker.training_outputs import algorithm_error, sync_checkpoints, upload_outputs
from kennel.cloud.services.sagemaker.training_rules import (
    final_statuses,
    initial_statuses,
    wants_profiler_report,
    write_profiler_report,
)
from kennel.runtime.endpoints.profiles import gpu_count
from kennel.runtime.jobs.contract import host_names
from kennel.runtime.jobs.engine import Engine
from kennel.runtime.jobs.metrics import MetricTracker, compile_definitions
from kennel.runtime.jobs.spec import JobSpec
from kennel.runtime.jobs.statuses import SECONDARY, Transition, advance
from kennel.runtime.jobs.usage import UsageSampler
from kennel.runtime.telemetry import LogSink, MetricSink

log = logging.getLogger("kennel.training")

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
METRIC_NAMESPACE = "/aws/sagemaker/TrainingJobs"
TICK_S = 0.1
CHECKPOINT_SYNC_S = 10.0
USAGE_SAMPLE_S = 1.0
SHUTDOWN_GRACE_S = 3.0
FAILED_PEER_GRACE_S = 10.0  # the other hosts of a job one host has failed
RESIGNAL_S = 2.0  # `kennel down` gives a job's hosts this long after SIGTERM


class TrainingRunner:
    def __init__(
        self,
        *,
        store,
        root: Path,
        engine: Engine,
        role_s3: Callable[[str], RoleS3],
        credentials: Callable[[str, str, str, int], dict],
        log_sink: LogSink,
        metric_sink: MetricSink,
        endpoint_url: str,
        region: str,
        capacity: int,
        stop_grace_s: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.root = root
        self.engine = engine
        self.role_s3 = role_s3
        self.credentials = credentials
        self.log_sink = log_sink
        self.metric_sink = metric_sink
        self.endpoint_url = endpoint_url
        self.region = region
        self.capacity = capacity
        self.stop_grace_s = stop_grace_s
        self.clock = clock
        self._lock = threading.Condition()
        self._in_use = 0
        self._stops: dict[str, str] = {}  # job -> "Stopped" | "MaxRuntimeExceeded"
        self._threads: dict[str, threading.Thread] = {}
        self._closing = False
        # Called with (job, metric, value, timestamp) for every metric value as its log line arrives:
        # tuning jobs judge running trials on these (Hyperband, Auto early stopping).
        self.observers: list[Callable[[str, str, float, float], None]] = []

    # --- public -------------------------------------------------------------------------------------
    def initial_state(self, now: float, spec: dict, name: str, account: str) -> dict:
        state = {"transitions": [advance([], "Starting", now)[0].wire()], "stream_stamp": int(now)}
        state.update(initial_statuses(spec, name, self.region, account, now))
        return state

    def instances_in_use(self) -> int:
        return self._in_use

    def submit(self, name: str) -> None:
        thread = threading.Thread(target=self._guarded, args=(name,), name=f"training-{name}", daemon=True)
        with self._lock:
            self._threads[name] = thread
        thread.start()

    def stop(self, name: str, why: str = "Stopped") -> None:
        with self._lock:
            self._stops.setdefault(name, why)
            self._lock.notify_all()
        self._transition(name, "Stopping")

    def restore(self) -> None:
        """Jobs a stop or crash cut off: resumed from their checkpoints, or failed saying why."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(t.training_jobs.c.name, t.training_jobs.c.spec).where(
                    t.training_jobs.c.status.in_(("InProgress", "Stopping"))
                )
            ).all()
        for name, spec_text in rows:
            spec = json.loads(spec_text)
            if spec.get("CheckpointConfig"):
                self._note(name, "Starting", "Resuming from the checkpoint after a Kennel restart")
                self.submit(name)
            else:
                self._finish(name, "Failed", failure=(
                    "InternalServerError: the training job was interrupted when Kennel stopped "
                    "(kennel down or a crash) and has no CheckpointConfig to resume from."
                ))  # fmt: skip

    def close(self) -> None:
        self._closing = True
        with self._lock:
            for name in self._threads:
                self._stops.setdefault(name, "Interrupted")
            self._lock.notify_all()
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout=15)

    # --- one job ------------------------------------------------------------------------------------
    def _guarded(self, name: str) -> None:
        try:
            self._run(name)
        except Exception as exc:  # a bug must fail the job visibly, never leave it InProgress forever
            log.exception("training job %s failed inside Kennel", name)
            self._finish(name, "Failed", failure=f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._threads.pop(name, None)

    def _run(self, name: str) -> None:
        row = self._row(name)  # read once: the spec, the ARN and the log-stream stamp never change
        spec = json.loads(row["spec"])
        stamp = json.loads(row["state"]).get("stream_stamp") or int(self.clock())
        count = int((spec.get("ResourceConfig") or {}).get("InstanceCount") or 1)
        if not self._acquire(name, count):
            return
        try:
            self._run_acquired(name, spec, count, row["arn"], stamp)
        finally:
            with self._lock:
                self._in_use -= count
                self._lock.notify_all()

    def _run_acquired(self, name: str, spec: dict, count: int, arn: str, stamp: int) -> None:
        job_root = self.root / name
        role_arn = spec["RoleArn"]
        try:
            if self._stopping(name):
                return self._finish(name, self._stops[name])
            self._transition(name, "Downloading")
            storage = self.role_s3(role_arn)
            code_dir, entry_point, submit_dir, envs = prepare_code(spec, storage, job_root)
            channels = prepare_channels(spec, storage, job_root, host_names(count))
            hosts_root = job_root / "hosts"
            clear(hosts_root)
            checkpoint = spec.get("CheckpointConfig")
            if checkpoint:
                for host in host_names(count):
                    storage.download_tree(checkpoint["S3Uri"], hosts_root / host / "checkpoints")
        except JobFailure as failure:
            return self._finish(name, "Failed", failure=failure.reason)
        if self._stopping(name):
            return self._finish(name, self._stops[name])
        max_runtime = int((spec.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds") or 86400)
        creds = self.credentials(role_arn.rsplit("/", 1)[-1], "SageMaker", arn, max_runtime + 3600)
        environment = dict(spec.get("Environment") or {})
        environment.update(
            AWS_ACCESS_KEY_ID=creds["AccessKeyId"],
            AWS_SECRET_ACCESS_KEY=creds["SecretAccessKey"],
            AWS_SESSION_TOKEN=creds["SessionToken"],
            AWS_ENDPOINT_URL=self.endpoint_url,
            AWS_REGION=self.region,
            AWS_DEFAULT_REGION=self.region,
        )
        hps = spec.get("HyperParameters") or {}
        job_spec = JobSpec(
            name=name,
            arn=arn,
            region=self.region,
            root=hosts_root,
            code_dir=code_dir,
            entry_point=entry_point,
            submit_directory=submit_dir,
            hyperparameters=hps,
            channels=channels,
            instance_count=count,
            instance_type=(spec.get("ResourceConfig") or {}).get("InstanceType", "ml.m5.xlarge"),
            environment=environment,
            python=sys.executable,
            torch_distributed=_flag(hps, "sagemaker_torch_distributed_enabled")
            or _flag(hps, "sagemaker_pytorch_ddp_enabled"),
            checkpoint_local_path=(checkpoint or {}).get("LocalPath"),
            extra_python_paths=envs,
            gpus=tuple(range(gpu_count())),  # split between the hosts; the sandbox passes /dev/nvidia* in
        )
        self._train(name, spec, job_spec, max_runtime, stamp)

    def _train(self, name: str, spec: dict, job_spec: JobSpec, max_runtime: int, stamp: int) -> None:
        tracker = MetricTracker(
            compile_definitions(spec["AlgorithmSpecification"].get("MetricDefinitions") or [])
        )
        pending: dict[str, list[tuple[float, str]]] = {}
        pending_lock = threading.Lock()

        def on_line(host: str, when: float, line: str) -> None:
            with pending_lock:
                pending.setdefault(host, []).append((when, line))
            for metric, value in tracker.feed(line, when):
                self.metric_sink.put(
                    METRIC_NAMESPACE, metric, {"Host": f"{name}/{host}"}, value, timestamp=when
                )
                for observer in self.observers:
                    observer(name, metric, value, when)

        def flush() -> None:
            with pending_lock:
                batches = list(pending.items())
                pending.clear()
            for host, events in batches:
                self.log_sink.append(LOG_GROUP, f"{name}/{host}-{stamp}", events)

        started = self.clock()
        self._transition(name, "Training", extra={"training_start": started})
        run = self.engine.launch(job_spec, on_line)
        samplers = {host.name: UsageSampler(host.proc.pid) for host in run.hosts if host.proc is not None}
        last_sample = 0.0
        outcome, failure = "Completed", None
        deadline = started + max_runtime
        stop_sent: float | None = None
        last_signal = 0.0
        last_sync = started
        first_failed = None  # the host whose failure ended the job: the others were stopped after it
        while not run.exited():
            with self._lock:
                self._lock.wait(TICK_S)
            flush()
            now = self.clock()
            if now - last_sample >= USAGE_SAMPLE_S:
                last_sample = now
                self._sample_usage(name, samplers, now)
            failed = run.failed_host()
            if failed is not None and stop_sent is None:
                first_failed = failed
                run.terminate()  # the other hosts cannot finish a job that has already failed
                stop_sent = last_signal = now
            if now > deadline and name not in self._stops:
                with self._lock:
                    self._stops[name] = "MaxRuntimeExceeded"
                self._transition(name, "MaxRuntimeExceeded")
            if name in self._stops and stop_sent is None:
                run.terminate()
                stop_sent = last_signal = now
            if stop_sent is not None and now - last_signal >= RESIGNAL_S:
                # A SIGTERM sent while a host's script was still starting inside its sandbox is lost;
                # repeat it until every host has gone.
                run.terminate()
                last_signal = now
            grace = self.stop_grace_s
            if self._stops.get(name) == "Interrupted":
                grace = SHUTDOWN_GRACE_S
            elif failed is not None and name not in self._stops:
                grace = FAILED_PEER_GRACE_S
            if stop_sent is not None and now - stop_sent > grace:
                run.kill()
            if spec.get("CheckpointConfig") and now - last_sync > CHECKPOINT_SYNC_S:
                last_sync = now
                self._sync_checkpoints(name, spec, run.hosts)
        codes = run.finish()
        flush()
        if name in self._stops:
            outcome = self._stops[name]
        else:
            bad = [first_failed] if first_failed is not None else []
            bad += [host for host in run.hosts if codes.get(host.name) not in (0, None)]
            bad += [host for host in run.hosts if codes.get(host.name) is None]
            if bad:
                outcome, failure = "Failed", algorithm_error(bad[0], codes.get(bad[0].name))
        ended = self.clock()
        self._update_state(name, {
            "final_metrics": tracker.final_metrics(),
            "training_seconds": max(1, round(ended - started)),
            "metric_series": {k: v[-500:] for k, v in tracker.series.items()},
        })  # fmt: skip
        self._finish_rules(name, spec, outcome, tracker, samplers)
        if outcome == "Interrupted":
            if spec.get("CheckpointConfig"):
                self._sync_checkpoints(name, spec, run.hosts)  # what the script saved survives the restart
            return  # Kennel is shutting down; restore() resumes or fails the job on the next start
        if outcome != "Failed":
            try:
                self._transition(name, "Uploading")
                self._upload(name, spec, run.hosts)
            except JobFailure as exc:
                outcome, failure = "Failed", exc.reason
        elif spec.get("CheckpointConfig"):
            self._sync_checkpoints(name, spec, run.hosts)
        self._finish(name, outcome, failure=failure)

    # --- host metrics and rules -------------------------------------------------------------------
    def _sample_usage(self, name: str, samplers: dict[str, UsageSampler], now: float) -> None:
        for host, sampler in samplers.items():
            found = sampler.sample(now)
            if found is None:
                continue
            dims = {"Host": f"{name}/{host}"}
            self.metric_sink.put(
                METRIC_NAMESPACE, "CPUUtilization", dims, found[0], unit="Percent", timestamp=now
            )
            self.metric_sink.put(
                METRIC_NAMESPACE, "MemoryUtilization", dims, found[1], unit="Percent", timestamp=now
            )

    def _finish_rules(self, name: str, spec: dict, outcome: str, tracker, samplers) -> None:
        if not (spec.get("DebugRuleConfigurations") or spec.get("ProfilerRuleConfigurations")):
            return
        if outcome == "Interrupted":
            return
        report = False
        if outcome in ("Completed", "Stopped") and wants_profiler_report(spec):
            usage = {host: sampler.samples for host, sampler in samplers.items()}
            report = write_profiler_report(
                self.role_s3(spec["RoleArn"]), spec, name, usage, tracker.series, self.root / name / "report"
            )
        values = {metric: [value for _, value in points] for metric, points in tracker.series.items()}
        state = json.loads(self._row(name)["state"])
        self._update_state(
            name, final_statuses(spec, state, values, self.clock(), outcome=outcome, report_written=report)
        )

    # --- outputs ------------------------------------------------------------------------------------
    def _upload(self, name: str, spec: dict, hosts) -> None:
        scratch = self.root / name / "upload"
        upload_outputs(self.role_s3(spec["RoleArn"]), spec, name, hosts, scratch)

    def _sync_checkpoints(self, name: str, spec: dict, hosts) -> None:
        sync_checkpoints(self.role_s3(spec["RoleArn"]), spec, name, hosts)

    # --- capacity -----------------------------------------------------------------------------------
    def _acquire(self, name: str, count: int) -> bool:
        with self._lock:
            waiting = False
            while self._in_use + count > self.capacity:
                if name in self._stops or self._closing:
                    break
                if not waiting:
                    waiting = True
                    self._lock.release()
                    try:
                        self._transition(name, "Pending", message=(
                            f"Waiting for capacity: {self._in_use} of {self.capacity} training instances "
                            f"on this machine are in use and this job needs {count}"
                        ))  # fmt: skip
                    finally:
                        self._lock.acquire()
                    continue
                self._lock.wait(0.5)
            if name in self._stops or self._closing:
                stop = self._stops.get(name, "Interrupted")
            else:
                self._in_use += count
                return True
        if stop != "Interrupted":
            self._finish(name, stop)
        return False

    def _stopping(self, name: str) -> bool:
        return name in self._stops

    # --- store --------------------------------------------------------------------------------------
    def _row(self, name: str) -> dict:
        with self.store.read() as conn:
            return dict(
                conn.execute(select(t.training_jobs).where(t.training_jobs.c.name == name)).one()._mapping
            )

    def _update_state(self, name: str, changes: dict, **columns) -> None:
        with self.store.write() as conn:
            row = conn.execute(select(t.training_jobs.c.state).where(t.training_jobs.c.name == name)).one()
            state = json.loads(row[0])
            state.update(changes)
            conn.execute(
                update(t.training_jobs)
                .where(t.training_jobs.c.name == name)
                .values(state=dumps(state), modified=self.clock(), **columns)
            )

    def _transition(
        self, name: str, secondary: str, *, message: str | None = None, extra: dict | None = None
    ):
        now = self.clock()
        with self.store.write() as conn:
            row = conn.execute(
                select(t.training_jobs.c.state, t.training_jobs.c.status).where(
                    t.training_jobs.c.name == name
                )
            ).one()
            state = json.loads(row[0])
            if row[1] not in ("InProgress", "Stopping"):
                return  # already finished: a late Stop must not reopen it
            history = [_transition_from(item) for item in state.get("transitions", [])]
            try:
                history = advance(history, secondary, now, message)
            except ValueError:
                return
            state["transitions"] = [item.wire() for item in history]
            state.update(extra or {})
            status = SECONDARY[secondary][0]
            if status != "Stopping" and row[1] == "Stopping":
                status = "Stopping"  # Uploading after a stop request keeps the job Stopping
            conn.execute(
                update(t.training_jobs).where(t.training_jobs.c.name == name).values(
                    state=dumps(state), status=status, secondary=secondary, modified=now
                )
            )  # fmt: skip

    def _note(self, name: str, secondary: str, message: str) -> None:
        with self.store.write() as conn:
            state = json.loads(
                conn.execute(select(t.training_jobs.c.state).where(t.training_jobs.c.name == name)).one()[0]
            )
            state.setdefault("transitions", []).append(
                {"Status": secondary, "StartTime": self.clock(), "StatusMessage": message}
            )
            conn.execute(
                update(t.training_jobs).where(t.training_jobs.c.name == name).values(
                    state=dumps(state), status="InProgress", secondary=secondary, modified=self.clock()
                )
            )  # fmt: skip

    def _finish(self, name: str, outcome: str, *, failure: str | None = None) -> None:
        now = self.clock()
        terminal = {"Completed": "Completed", "Failed": "Failed"}.get(outcome, outcome)
        with self.store.write() as conn:
            row = conn.execute(select(t.training_jobs.c.state).where(t.training_jobs.c.name == name)).one()
            state = json.loads(row[0])
            history = [_transition_from(item) for item in state.get("transitions", [])]
            if terminal == "MaxRuntimeExceeded" and history and history[-1].status == "MaxRuntimeExceeded":
                pass
            else:
                try:
                    history = advance(history, terminal, now)
                except ValueError:
                    history = [*history, Transition(terminal, now, now, SECONDARY[terminal][1])]
            state["transitions"] = [item.wire() for item in history]
            state["training_end"] = now
            if failure:
                state["failure_reason"] = failure
            status = SECONDARY[terminal][0]
            conn.execute(
                update(t.training_jobs).where(t.training_jobs.c.name == name).values(
                    state=dumps(state), status=status, secondary=terminal, modified=now
                )
            )  # fmt: skip
        with self._lock:
            self._stops.pop(name, None)


def _transition_from(item: dict) -> Transition:
    return Transition(item["Status"], item["StartTime"], item.get("EndTime"), item.get("StatusMessage", ""))


def _flag(hps: dict, name: str) -> bool:
    return str(hps.get(name, "")).strip('"').lower() == "true"
