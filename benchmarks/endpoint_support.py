"""What the endpoint benchmarks share: a gateway process of their own with boto3 clients for it, a
trivial scripted model (everything but a model), and a percentile."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

from kennel.cloud import server
from kennel.cloud.cloudstate import admin_credentials
from kennel.settings import Settings

ECHO_SCRIPT = """
def model_fn(model_dir):
    return None


def transform_fn(model, body, content_type, accept):
    return b"[]"
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Cloud:
    """A gateway process of its own, and boto3 clients for it."""

    def __init__(self, root: Path) -> None:
        # The model.tar.gz is built under root; the gateway reads local model data only from there.
        self.settings = Settings(state_dir=root / "state", port=0, allow_local_model_data=(root,))
        self.running = server.start_detached(self.settings, follow_caller=True)
        creds = admin_credentials(self.settings)
        assert creds is not None
        self.kwargs = dict(
            endpoint_url=self.running.endpoint,
            region_name="us-east-1",
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            config=Config(retries={"max_attempts": 1}, max_pool_connections=64),
        )

    def client(self, service: str):
        return boto3.session.Session().client(service, **self.kwargs)

    def log_line(self, name: str, needles: tuple[str, ...]) -> str:
        """The first line of the endpoint's log holding one of ``needles`` ("" if none comes)."""
        logs, group = self.client("logs"), f"/aws/sagemaker/Endpoints/{name}"
        for _ in range(40):  # the log writer batches; the line arrives within a few seconds
            for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]:
                events = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])
                for event in events["events"]:
                    if any(needle in event["message"] for needle in needles):
                        return event["message"]
            time.sleep(0.5)
        return ""

    def served_runtime(self, name: str) -> str:
        """What the endpoint's instance says it serves with (its "loaded" log line)."""
        line = self.log_line(name, ("(runtime ",))
        return line.split("(runtime ", 1)[1].split(",", 1)[0] if line else "?"

    def gate(self, name: str) -> str:
        """The precision gate's verdict and figures, from the instance's log."""
        line = self.log_line(name, ("precision gate passed", "precision gate refused"))
        return line.split("precision gate ", 1)[1] if line else "?"

    def deploy(self, name: str, url: Path, env: dict[str, str]) -> None:
        sm = self.client("sagemaker")
        sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(url), "Environment": env})
        variant = {
            "VariantName": "AllTraffic",
            "ModelName": name,
            "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large",
        }
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
        )

    def close(self) -> None:
        server.stop_pid(self.running.pid)


def echo_artifact(root: Path) -> Path:
    code = root / "echo" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(ECHO_SCRIPT)
    with tarfile.open(root / "echo.tar.gz", "w:gz") as tar:
        tar.add(code, arcname="code")
    return root / "echo.tar.gz"
