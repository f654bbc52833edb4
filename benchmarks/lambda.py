"""Lambda: warm invoke overhead, cold start, provisioned invocations — through a real gateway process.

Figures, all measured in this run:
- warm Invoke p50/p99 of a trivial handler through boto3 → gateway (SigV4, routing, IAM with the
  function policy) → environment process → back, against two baselines: the same handler called
  directly in this process, and sts GetCallerIdentity through the same gateway and client setup; the
  target (≤ 3 ms p50) is on the overhead, invoke p50 minus the direct call;
- cold start of a stdlib-only handler: Init Duration from the REPORT line (process start → handler
  imported) and the client-observed latency of that first invocation;
- provisioned concurrency: invocations of an alias with 2 ready environments, counting REPORT lines
  that carry an Init Duration (target: none).

    python benchmarks/lambda.py [--warm 500] [--cold 10]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import statistics
import sys
import tempfile
import time
import types
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config

from kennel.cloud import server
from kennel.cloud.cloudstate import admin_credentials
from kennel.settings import Settings

SOURCE = "def handler(event, context):\n    return event\n"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}
INIT = re.compile(r"Init Duration: (\d+\.\d+) ms")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", SOURCE)
    return buffer.getvalue()


def direct_call_ms(n: int) -> list[float]:
    """The baseline: the same handler imported and called in this process (JSON in and out, like the path)."""
    module = types.ModuleType("bench_app")
    exec(compile(SOURCE, "app.py", "exec"), module.__dict__)
    payload = b'{"ping": 1}'
    return timed(lambda: json.dumps(module.handler(json.loads(payload), None)).encode(), n)


def init_ms(response: dict) -> float | None:
    found = INIT.search(base64.b64decode(response["LogResult"]).decode())
    return float(found.group(1)) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warm", type=int, default=500)
    parser.add_argument("--cold", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kennel-bench-") as tmp:
        settings = Settings(state_dir=Path(tmp) / "state", port=0)
        running = server.start_detached(settings, follow_caller=True)
        try:
            run(running.endpoint, settings, args)
        finally:
            server.stop_pid(running.pid)


def run(endpoint: str, settings: Settings, args) -> None:
    creds = admin_credentials(settings)
    assert creds is not None
    session = boto3.session.Session()
    common = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}),
    )
    lam, sts, iam = (session.client(name, **common) for name in ("lambda", "sts", "iam"))
    role = iam.create_role(RoleName="bench-role", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    lam.create_function(
        FunctionName="bench",
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": package()},
    )

    def invoke(**extra):
        response = lam.invoke(FunctionName="bench", Payload=b'{"ping": 1}', **extra)
        response["Payload"].read()
        return response

    for _ in range(20):  # connections, caches and the environment warm up
        invoke()
        sts.get_caller_identity()
    # Interleaved, so both calls see the same machine: other work on a shared box shifts them together.
    warm, identity = [], []
    for _ in range(args.warm):
        warm += timed(invoke, 1)
        identity += timed(sts.get_caller_identity, 1)
    direct = direct_call_ms(args.warm)

    cold_init, cold_latency = [], []
    for index in range(args.cold):
        lam.update_function_configuration(FunctionName="bench", Description=f"cold {index}")  # retires it
        started = time.perf_counter()
        response = invoke(LogType="Tail")
        cold_latency.append((time.perf_counter() - started) * 1000)
        cold_init.append(init_ms(response) or 0.0)

    version = lam.publish_version(FunctionName="bench")["Version"]
    lam.create_alias(FunctionName="bench", Name="live", FunctionVersion=version)
    lam.put_provisioned_concurrency_config(
        FunctionName="bench", Qualifier="live", ProvisionedConcurrentExecutions=2
    )
    ready_started = time.perf_counter()
    while lam.get_provisioned_concurrency_config(FunctionName="bench", Qualifier="live")["Status"] != "READY":
        time.sleep(0.02)
    ready_ms = (time.perf_counter() - ready_started) * 1000
    provisioned, with_init = [], 0
    for _ in range(50):
        started = time.perf_counter()
        response = lam.invoke(FunctionName="bench", Qualifier="live", Payload=b"{}", LogType="Tail")
        provisioned.append((time.perf_counter() - started) * 1000)
        with_init += init_ms(response) is not None

    p50 = statistics.median
    overhead = p50(warm) - p50(direct)
    verdict = {True: "met", False: "MISSED"}

    def spread(values: list[float]) -> str:
        return f"p50 {p50(values):.3f} ms, p99 {percentile(values, 0.99):.3f} ms"

    cold = p50(cold_init)
    rows = [
        ("warm Invoke (boto3 → gateway → environment)", spread(warm)),
        ("direct in-process call of the handler", f"p50 {p50(direct):.4f} ms"),
        ("sts GetCallerIdentity, same gateway", spread(identity)),
        (
            "warm invoke overhead (invoke − direct)",
            f"p50 {overhead:.3f} ms (≤ 3 ms: {verdict[overhead <= 3]})",
        ),
        ("invoke / direct", f"{p50(warm) / max(p50(direct), 1e-6):,.0f}×"),
        (
            "invoke / GetCallerIdentity",
            f"{p50(warm) / p50(identity):.2f}× (+{p50(warm) - p50(identity):.3f} ms)",
        ),
        (
            f"cold start, stdlib handler ({len(cold_init)}×): Init Duration",
            f"p50 {cold:.1f} ms, max {max(cold_init):.1f} ms (≤ 250 ms: {verdict[cold <= 250]})",
        ),
        ("cold start: first-invoke latency at the client", f"p50 {p50(cold_latency):.1f} ms"),
        ("provisioned alias: 2 environments READY after", f"{ready_ms:.0f} ms"),
        (
            f"provisioned alias: {len(provisioned)} invocations",
            f"{with_init} with Init Duration, p50 {p50(provisioned):.3f} ms",
        ),
    ]
    cpus = os.cpu_count()
    print(f"Lambda benchmark (Python {sys.version.split()[0]}, {cpus} CPUs), {args.warm} warm calls each")
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


if __name__ == "__main__":
    main()
