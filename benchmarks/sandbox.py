"""The sandbox's cost: the same workloads on two gateways in one run, KENNEL_SANDBOX=on and off.

Figures (targets from issue 11 in brackets), each as sandboxed − unconfined:
- Lambda warm Invoke p50 through boto3 → gateway → environment → back      [+≤ 1 ms]
- Lambda cold start: client-observed first invocation and Init Duration     [+≤ 100 ms]
- endpoint full path: InvokeEndpoint p50 of an echo script model             [+≤ 0.5 ms]
- a call from inside a function back to the gateway (sts GetCallerIdentity), which goes through
  the sandbox's relay when confined (no target; it is what user code pays per AWS call)
- spawning ``python -c pass`` through ``Sandbox.spawn`` in this process, confined and not (no target;
  the floor under the cold start)

Rounds alternate between the two gateways so that drift on a shared machine hits both alike.

    python benchmarks/sandbox.py [--warm 300] [--cold 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config

from kennel.cloud import server
from kennel.cloud.cloudstate import admin_credentials
from kennel.settings import Settings

HANDLER = """
import time
STS = None

def handler(event, context):
    global STS
    if event.get("sts"):  # boto3 imported here: the cold start measures the sandbox, not boto3's import
        import boto3

        STS = STS or boto3.client("sts")
        STS.get_caller_identity()
        times = []
        for _ in range(event["sts"]):
            started = time.perf_counter()
            STS.get_caller_identity()
            times.append((time.perf_counter() - started) * 1000)
        return sorted(times)[len(times) // 2]
    return event
"""
MODEL = "def model_fn(d):\n    return 1\n\ndef transform_fn(m, body, ct, accept):\n    return body, ct\n"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": s}, "Action": "sts:AssumeRole"}
    for s in ("lambda.amazonaws.com", "sagemaker.amazonaws.com")]})  # fmt: skip
INIT = re.compile(r"Init Duration: (\d+\.\d+) ms")


class Gateway:
    def __init__(self, root: Path, sandbox: str) -> None:
        self.mode = sandbox
        state = root / f"state-{sandbox}"
        port = server.free_port()
        env = {**os.environ, "KENNEL_S3_EAGER": "0", "KENNEL_SANDBOX": sandbox,
               "KENNEL_ALLOW_LOCAL_MODEL_DATA": str(root)}  # fmt: skip
        log = (root / f"gateway-{sandbox}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kennel.cloud.server", "--state-dir", str(state), "--port", str(port)],
            stdout=log, stderr=log, env=env, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not server.healthy(port, 0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {sandbox} gateway did not start; see {log.name}")
            time.sleep(0.1)
        creds = admin_credentials(Settings(state_dir=state))
        assert creds is not None
        session = boto3.session.Session(
            aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key,
            region_name="us-east-1",
        )  # fmt: skip
        config = Config(retries={"total_max_attempts": 1}, read_timeout=300)
        self.client = lambda name: session.client(
            name, endpoint_url=f"http://127.0.0.1:{port}", config=config
        )
        self.lam, self.rt = self.client("lambda"), self.client("sagemaker-runtime")
        self.role = self.client("iam").create_role(RoleName="bench", AssumeRolePolicyDocument=TRUST)["Role"][
            "Arn"
        ]

    def function(self, name: str) -> str:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("app.py", HANDLER)
        self.lam.create_function(FunctionName=name, Role=self.role, Runtime="python3.11",
                                 Handler="app.handler", Code={"ZipFile": buffer.getvalue()},
                                 Timeout=60, MemorySize=256)  # fmt: skip
        return name

    def invoke(self, name: str, event: dict, **kw) -> dict:
        return self.lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **kw)

    def endpoint(self, url: Path) -> str:
        sm = self.client("sagemaker")
        sm.create_model(
            ModelName="echo", PrimaryContainer={"ModelDataUrl": str(url)}, ExecutionRoleArn=self.role
        )
        variant = {
            "VariantName": "A",
            "ModelName": "echo",
            "InitialInstanceCount": 1,
            "InstanceType": "ml.t2.medium",
        }
        sm.create_endpoint_config(EndpointConfigName="echo", ProductionVariants=[variant])
        sm.create_endpoint(EndpointName="echo", EndpointConfigName="echo")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="echo", WaiterConfig={"Delay": 1, "MaxAttempts": 180}
        )
        return "echo"

    def stop(self) -> None:
        server.stop_pid(self.proc.pid)


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def p50(values: list[float]) -> float:
    return statistics.median(values)


def report(name: str, on: list[float], off: list[float], target: str) -> None:
    a, b = p50(on), p50(off)
    print(f"{name:<38} sandboxed {a:8.2f} ms   unconfined {b:8.2f} ms   "
          f"difference {a - b:+7.2f} ms   ratio {a / b:5.2f}   target {target}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=300, help="warm invocations per gateway")
    parser.add_argument("--cold", type=int, default=8, help="cold starts per gateway")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kennel-bench-sandbox-") as tmp:
        root = Path(tmp)
        (root / "code").mkdir()
        (root / "code" / "inference.py").write_text(MODEL)
        with tarfile.open(root / "model.tar.gz", "w:gz") as tar:
            tar.add(root / "code", arcname="code")
        gateways = {"on": Gateway(root, "on"), "off": Gateway(root, "off")}
        try:
            run(gateways, root, args)
        finally:
            for gateway in gateways.values():
                gateway.stop()


def spawn_ms(root: Path, n: int) -> dict[str, list[float]]:
    from kennel.runtime.sandbox import Limits, Sandbox, SandboxSpec

    argv = [sys.executable, "-S", "-c", "pass"]
    spec = SandboxSpec(argv=argv, env={}, cwd="/", limits=Limits(memory_mb=128))
    out: dict[str, list[float]] = {}
    for mode, enabled in (("on", True), ("off", False)):
        box = Sandbox(gateway_port=server.free_port(), state_dir=root / f"spawn-{mode}", enabled=enabled)
        try:
            box.spawn(spec).wait()  # the relay starts here, outside the timing
            out[mode] = timed(lambda box=box: box.spawn(spec).wait(), n)
        finally:
            box.close()
    return out


def run(gateways: dict[str, Gateway], root: Path, args) -> None:
    warm = {mode: [] for mode in gateways}
    inside = {mode: [] for mode in gateways}
    path = {mode: [] for mode in gateways}
    cold = {mode: [] for mode in gateways}
    init = {mode: [] for mode in gateways}
    for gateway in gateways.values():
        gateway.function("warm")
        gateway.invoke("warm", {})  # the environment is started before any timing
        gateway.endpoint(root / "model.tar.gz")
        for _ in range(20):
            gateway.rt.invoke_endpoint(EndpointName="echo", Body=b"{}", ContentType="application/json")
    per_round = max(1, args.warm // args.rounds)
    for round_ in range(args.rounds):
        for mode, gateway in gateways.items():
            warm[mode] += timed(lambda g=gateway: g.invoke("warm", {"ping": 1})["Payload"].read(), per_round)
            path[mode] += timed(
                lambda g=gateway: g.rt.invoke_endpoint(EndpointName="echo", Body=b'{"a": 1}',
                                                      ContentType="application/json")["Body"].read(),
                per_round,
            )  # fmt: skip
            inside[mode].append(json.loads(gateway.invoke("warm", {"sts": 50})["Payload"].read()))
            for i in range(max(1, args.cold // args.rounds)):
                name = gateway.function(f"cold-{round_}-{i}")
                started = time.perf_counter()
                response = gateway.invoke(name, {}, LogType="Tail")
                cold[mode].append((time.perf_counter() - started) * 1000)
                found = INIT.search(base64.b64decode(response["LogResult"]).decode())
                if found:
                    init[mode].append(float(found.group(1)))
    samples = f"{len(warm['on'])} warm / {len(cold['on'])} cold samples per mode"
    print(f"sandbox cost, {os.cpu_count()} CPUs, {samples}")
    report("Lambda warm Invoke p50", warm["on"], warm["off"], "+<=1 ms")
    report("Lambda cold start (client) p50", cold["on"], cold["off"], "+<=100 ms")
    report("Lambda Init Duration p50", init["on"], init["off"], "+<=100 ms")
    report("endpoint InvokeEndpoint p50", path["on"], path["off"], "+<=0.5 ms")
    report("sts call from inside a function p50", inside["on"], inside["off"], "(relay; no target)")
    spawns = spawn_ms(root, 20)
    report("Sandbox.spawn python -c pass p50", spawns["on"], spawns["off"], "(no target)")


if __name__ == "__main__":
    main()
