"""One Settings object, built at start-up and passed in (nothing reads the environment at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, field_validator


class Settings(BaseModel):
    state_dir: Path = Field(Path(".kennel"), description="where the store, logs and PID files live")
    host: str = Field("127.0.0.1", description="bind address; loopback only by design")
    port: int = Field(4566, ge=0, le=65535, description="gateway port (0 picks a free one)")
    region: str = Field("us-east-1", description="the region Kennel answers for")
    account_id: str = Field(
        "000000000000", pattern=r"^\d{12}$", description="the single account Kennel simulates"
    )
    admin_user: str = Field("admin", description="IAM user created on first start, with AdministratorAccess")
    max_body_bytes: int = Field(100 * 1024 * 1024, description="largest request body accepted")
    max_object_bytes: int = Field(
        5 * 1024**3, ge=1, description="largest S3 object one PUT (or one part) may carry (AWS: 5 GiB)"
    )
    max_clock_skew_s: int = Field(900, description="SigV4 clock-skew allowance (AWS: 15 minutes)")
    time_scale_s: float = Field(
        60.0, gt=0, description="seconds in one simulated minute (metric periods, alarm windows, cooldowns)"
    )
    max_instances: int = Field(8, ge=1, description="model-server instances this machine may host at once")
    gateway_threads: int = Field(
        64, ge=4, description="control-plane worker threads (every call that is not data-plane work)"
    )
    # Data-plane work (InvokeEndpoint, Lambda Invoke, S3 bodies) waits on models, functions and the object
    # store; each kind has its own threads and a bounded queue, so it can never take the control plane's.
    data_plane_threads: int = Field(128, ge=1, description="worker threads per data-plane kind")
    data_plane_queue: int = Field(
        256, ge=0, description="requests per data-plane kind that may wait for a thread; past that, throttled"
    )
    endpoint_max_in_flight: int = Field(
        32, ge=1, description="InvokeEndpoint requests one instance may hold (running + queued); then 503"
    )
    header_timeout_s: float = Field(20.0, gt=0, description="a request's headers must arrive within this")
    body_timeout_s: float = Field(
        20.0, gt=0, description="longest silence while a body is read or an answer written (RequestTimeout)"
    )
    keep_alive_timeout_s: float = Field(5.0, gt=0, description="an idle connection is closed after this")
    max_connections_per_client: int = Field(
        512, ge=1, description="open connections one client address may hold; past that, refused with a 503"
    )
    s3_eager_start: bool = Field(
        True, description="start SeaweedFS with the gateway (False: on the first S3 request, as tests do)"
    )
    training_stop_grace_s: float = Field(
        120.0, ge=0, description="seconds between SIGTERM and the kill when a training job stops (AWS: 120)"
    )
    lambda_concurrency_limit: int = Field(1000, ge=1, description="account-level Lambda concurrency")
    allow_local_model_data: tuple[Path, ...] = Field(
        (),
        description="directories a ModelDataUrl may name as a local path or file:// URL (none: only s3:// "
        "and https://, as on AWS); env KENNEL_ALLOW_LOCAL_MODEL_DATA=<dir1>:<dir2>",
    )

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Child processes (model servers, function environments) run in other working directories.
        return Path(value).expanduser().absolute()

    @field_validator("allow_local_model_data")
    @classmethod
    def _absolute_dirs(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        # A relative entry would mean whatever the gateway's working directory happens to be.
        for directory in value:
            if not Path(directory).is_absolute():
                raise ValueError(f"KENNEL_ALLOW_LOCAL_MODEL_DATA entries must be absolute: {directory}")
        return tuple(Path(directory) for directory in value)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "kennel.db"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Settings:
        env = os.environ if env is None else env
        values: dict = {}
        if env.get("KENNEL_STATE_DIR"):
            values["state_dir"] = Path(env["KENNEL_STATE_DIR"])
        if env.get("KENNEL_PORT"):
            values["port"] = int(env["KENNEL_PORT"])
        if env.get("KENNEL_TIME_SCALE"):
            values["time_scale_s"] = float(env["KENNEL_TIME_SCALE"])
        if env.get("KENNEL_S3_EAGER"):
            values["s3_eager_start"] = env["KENNEL_S3_EAGER"].lower() not in ("0", "false", "no")
        if env.get("KENNEL_TRAINING_STOP_GRACE_S"):
            values["training_stop_grace_s"] = float(env["KENNEL_TRAINING_STOP_GRACE_S"])
        if env.get("KENNEL_REGION"):
            values["region"] = env["KENNEL_REGION"]
        if env.get("KENNEL_ALLOW_LOCAL_MODEL_DATA"):
            dirs = env["KENNEL_ALLOW_LOCAL_MODEL_DATA"].split(":")
            values["allow_local_model_data"] = tuple(Path(d) for d in dirs if d)
        for name, field in _ENV_LIMITS.items():  # front-door limits, shortened by tests
            if env.get(name):
                values[field] = env[name]  # pydantic converts and validates
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


_ENV_LIMITS = {
    "KENNEL_GATEWAY_THREADS": "gateway_threads",
    "KENNEL_DATA_PLANE_THREADS": "data_plane_threads",
    "KENNEL_DATA_PLANE_QUEUE": "data_plane_queue",
    "KENNEL_ENDPOINT_MAX_IN_FLIGHT": "endpoint_max_in_flight",
    "KENNEL_HEADER_TIMEOUT": "header_timeout_s",
    "KENNEL_BODY_TIMEOUT": "body_timeout_s",
    "KENNEL_KEEP_ALIVE_TIMEOUT": "keep_alive_timeout_s",
    "KENNEL_MAX_CONNECTIONS_PER_CLIENT": "max_connections_per_client",
}
