"""What the engine needs to run one training job: everything already local and decided."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kennel.runtime.jobs.contract import Channel


@dataclass(frozen=True)
class ChannelData:
    """A channel's local copy: one directory for every host, or one per host when sharded."""

    channel: Channel
    shared: Path | None = None
    per_host: Mapping[str, Path] = field(default_factory=dict)

    def for_host(self, host: str) -> Path:
        if self.shared is not None:
            return self.shared
        return self.per_host[host]


@dataclass(frozen=True)
class JobSpec:
    name: str
    arn: str
    region: str
    root: Path  # the job's working directory on this machine (hosts get root/algo-N)
    code_dir: Path  # the unpacked sourcedir.tar.gz (bound read-only at /opt/ml/code)
    entry_point: str
    submit_directory: str  # the S3 URI it came from (SM_MODULE_DIR)
    hyperparameters: Mapping[str, str]
    channels: tuple[ChannelData, ...]
    instance_count: int
    instance_type: str
    environment: Mapping[str, str]  # the job's Environment plus credentials and AWS_ENDPOINT_URL
    python: str
    torch_distributed: bool = False
    checkpoint_local_path: str | None = None  # inside the host, e.g. /opt/ml/checkpoints
    extra_python_paths: tuple[Path, ...] = ()  # environments built from requirements.txt
    memory_mb: int | None = None  # per host
    log_bytes_per_host: int = 16 * 1024 * 1024  # past this a host's output is dropped (the gateway's memory)
    gpus: tuple[int, ...] = ()  # the machine's GPUs this job may use, split between hosts
