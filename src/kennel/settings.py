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
    gateway_threads: int = Field(256, ge=4, description="worker threads for requests that wait on compute")
    s3_eager_start: bool = Field(
        True, description="start SeaweedFS with the gateway (False: on the first S3 request, as tests do)"
    )
    training_stop_grace_s: float = Field(
        120.0, ge=0, description="seconds between SIGTERM and the kill when a training job stops (AWS: 120)"
    )
    lambda_concurrency_limit: int = Field(1000, ge=1, description="account-level Lambda concurrency")

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Child processes (model servers, function environments) run in other working directories.
        return Path(value).expanduser().absolute()

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
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
