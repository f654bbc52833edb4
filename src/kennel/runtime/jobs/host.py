"""One training "instance" (``algo-N``): its ``/opt/ml`` directories, its sandboxed process, its log.

The host's directories live under the job's root on this machine and are bound at their AWS paths
inside the sandbox, so a script that hard-codes ``/opt/ml/model`` and one that reads
``SM_MODEL_DIR`` both work. stdout and stderr are one pipe, read line by line by a pump thread
that timestamps each line and hands it on (CloudWatch Logs, metric regexes); output past the
per-host byte budget is dropped with one notice, so a script printing gigabytes cannot exhaust
the gateway's memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from kennel.runtime.jobs import contract as c
from kennel.runtime.jobs.spec import JobSpec
from kennel.runtime.sandbox import Limits, Mount, Sandbox, SandboxNetwork, SandboxSpec

MAX_LINE_BYTES = 256 * 1024  # CloudWatch Logs' event size limit
LineCallback = Callable[[str, float, str], None]  # (host, epoch seconds, line)


class Host:
    def __init__(self, spec: JobSpec, name: str, hosts: tuple[str, ...]) -> None:
        self.spec = spec
        self.name = name
        self.hosts = hosts
        self.dir = spec.root / name
        self.proc: subprocess.Popen | None = None
        self.tail: deque[str] = deque(maxlen=30)
        self._pump: threading.Thread | None = None
        self._dropped = 0

    # --- layout ---------------------------------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        return self.dir / "model"

    @property
    def output_dir(self) -> Path:
        return self.dir / "output"

    @property
    def checkpoint_dir(self) -> Path:
        return self.dir / "checkpoints"

    def prepare(self) -> None:
        for sub in ("config", "model", "output/data", "output/intermediate", "checkpoints"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        channels = tuple(item.channel for item in self.spec.channels)
        config = self.dir / "config"
        (config / "hyperparameters.json").write_text(json.dumps(dict(self.spec.hyperparameters)))
        (config / "resourceconfig.json").write_text(
            json.dumps(c.resource_config(self.name, self.hosts, self.spec.instance_type))
        )
        (config / "inputdataconfig.json").write_text(json.dumps(c.input_data_config(channels)))

    def mounts(self) -> list[Mount]:
        spec = self.spec
        mounts = [
            Mount(spec.code_dir, c.CODE_DIR),
            Mount(self.dir / "config", c.CONFIG_DIR),
            Mount(self.model_dir, c.MODEL_DIR, writable=True),
            Mount(self.output_dir, c.OUTPUT_DIR, writable=True),
            Mount(self.checkpoint_dir, spec.checkpoint_local_path or c.CHECKPOINT_DIR, writable=True),
        ]
        mounts += [
            Mount(item.for_host(self.name), f"{c.DATA_DIR}/{item.channel.name}") for item in spec.channels
        ]
        mounts += [Mount(path, f"/opt/kennel/env/{i}") for i, path in enumerate(spec.extra_python_paths)]
        return mounts

    def environment(self) -> dict[str, str]:
        spec = self.spec
        cpus = max(1, (os.cpu_count() or 1) // max(1, spec.instance_count))
        gpus = self._gpus()
        env = c.container_environment(
            c.HostContext(
                job_name=spec.name,
                job_arn=spec.arn,
                region=spec.region,
                current_host=self.name,
                hosts=self.hosts,
                instance_type=spec.instance_type,
                channels=tuple(item.channel for item in spec.channels),
                raw_hyperparameters=spec.hyperparameters,
                entry_point=spec.entry_point,
                submit_directory=spec.submit_directory,
                num_cpus=cpus,
                num_gpus=len(gpus),
            )
        )
        # N hosts share this machine's cores: without this each one would start a thread per core.
        env["OMP_NUM_THREADS"] = str(cpus)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
        if spec.extra_python_paths:
            env["PYTHONPATH"] = ":".join(f"/opt/kennel/env/{i}" for i in range(len(spec.extra_python_paths)))
        env.update(spec.environment)
        return env

    def _gpus(self) -> list[int]:
        gpus = list(self.spec.gpus)
        if not gpus:
            return []
        index = self.hosts.index(self.name)
        share = max(1, len(gpus) // len(self.hosts))
        return gpus[index * share : (index + 1) * share] or [gpus[index % len(gpus)]]

    # --- process --------------------------------------------------------------------------------
    def start(self, sandbox: Sandbox, network: SandboxNetwork | None, on_line: LineCallback) -> None:
        spec = self.spec
        user, _ = c.split_hyperparameters(c.decode_hyperparameters(spec.hyperparameters))
        argv = c.launch_command(
            spec.python, spec.entry_point, c.cmd_args(user), torch_distributed=spec.torch_distributed,
            hosts=self.hosts, current=self.name, procs_per_host=max(1, len(self._gpus())),
        )  # fmt: skip
        sandbox_spec = SandboxSpec(
            argv=argv,
            env=self.environment(),
            cwd=c.CODE_DIR,
            mounts=self.mounts(),
            limits=Limits(memory_mb=spec.memory_mb, tmp_mb=4096),
            network=network,
            hosts={host: "127.0.0.1" for host in self.hosts},
            label=f"{spec.name}/{self.name}",
            hostname=self.name,  # socket.gethostname() is the host's name, as the toolkit's shim makes it
        )
        self.proc = sandbox.spawn(sandbox_spec, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._pump = threading.Thread(
            target=self._read, args=(on_line,), name=f"job-{spec.name}-{self.name}", daemon=True
        )
        self._pump.start()

    def _read(self, on_line: LineCallback) -> None:
        # The pipe may be closed under us (finish() gave up waiting): the host is gone anyway.
        with contextlib.suppress(ValueError, OSError):
            self._pump_lines(on_line)

    def _pump_lines(self, on_line: LineCallback) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        budget = self.spec.log_bytes_per_host
        for raw in iter(lambda: self.proc.stdout.readline(MAX_LINE_BYTES), b""):  # type: ignore[union-attr]
            budget -= len(raw)
            if budget < 0:
                if self._dropped == 0:
                    on_line(self.name, time.time(), "[kennel] log output past the per-host limit is dropped")
                self._dropped += 1
                continue
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.tail.append(line)
            on_line(self.name, time.time(), line)

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def finish(self, timeout_s: float = 10.0) -> int | None:
        """Wait for the process and the last of its output."""
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait(timeout=5)
        if self._pump is not None:
            self._pump.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def failure_file(self) -> str | None:
        path = self.output_dir / "failure"
        try:
            text = path.read_text(errors="replace")[:1024].strip()
        except OSError:
            return None
        return text or None
