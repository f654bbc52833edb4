"""S3 through Kennel's gateway against SeaweedFS's own S3 port, in the same run.

The gateway adds SigV4 verification of the client, IAM authorisation per operation, body spooling
(S3 signs the body's digest, so nothing is forwarded before it is checked), re-signing and a
streaming proxy hop. The baseline is the same boto3 workload sent straight to SeaweedFS.

Figures: large-object PUT and GET throughput (MB/s, boto3 transfer manager, multipart), small-object
PUT/GET/HEAD latency p50 and requests/s with 8 threads; each as gateway ÷ direct.

Side keys (keys the store cannot hold under their own names: ``a/`` with a body, a path segment over
255 bytes; objectstore/sidekeys.py), through the gateway against plain keys in the same run: PUT/GET
p50 of each kind, and the p50 of ListObjectsV2 of the same plain keys from a bucket without side keys
and from one that also holds long keys (whose listings Kennel merges).

    python benchmarks/s3.py [--mib 64] [--small 300]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config
from rich.console import Console
from rich.table import Table

from kennel.cloud import server
from kennel.cloud.cloudstate import admin_credentials
from kennel.cloud.objectstore.seaweed import StoreIdentity
from kennel.settings import Settings


def client(endpoint: str, key: str, secret: str):
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=16, retries={"max_attempts": 2}),
    )  # fmt: skip


def throughput(s3, bucket: str, payload: bytes) -> tuple[float, float]:
    start = time.perf_counter()
    s3.upload_fileobj(io.BytesIO(payload), bucket, "large.bin")
    put = len(payload) / (time.perf_counter() - start) / 1e6
    out = io.BytesIO()
    start = time.perf_counter()
    s3.download_fileobj(bucket, "large.bin", out)
    get = len(payload) / (time.perf_counter() - start) / 1e6
    assert out.getvalue() == payload
    return put, get


def small_ops(s3, bucket: str, n: int) -> dict[str, float]:
    body = os.urandom(4096)
    timings: dict[str, list[float]] = {"PUT": [], "GET": [], "HEAD": []}
    calls = {
        "PUT": lambda key: s3.put_object(Bucket=bucket, Key=key, Body=body),
        "GET": lambda key: s3.get_object(Bucket=bucket, Key=key)["Body"].read(),
        "HEAD": lambda key: s3.head_object(Bucket=bucket, Key=key),
    }
    for i in range(n):
        for name, call in calls.items():
            start = time.perf_counter()
            call(f"small/{i}")
            timings[name].append((time.perf_counter() - start) * 1000)
    result = {f"{name} p50 ms": statistics.median(values) for name, values in timings.items()}

    def get(i: int) -> None:
        s3.get_object(Bucket=bucket, Key=f"small/{i % n}")["Body"].read()

    with ThreadPoolExecutor(8) as pool:
        start = time.perf_counter()
        list(pool.map(get, range(n * 2)))
        result["GET req/s (8 threads)"] = n * 2 / (time.perf_counter() - start)
    return result


def _p50_ms(call, count: int) -> float:
    times = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def side_key_figures(s3, bucket: str, n: int) -> dict[str, tuple[float, float]]:
    """(plain, side) p50s for each figure, interleaved kind by kind in one run."""
    body = os.urandom(4096)
    kinds = {"plain": lambda i: f"plain/{i}", "folder a/": lambda i: f"folder{i}/",
             "long segment": lambda i: f"long/{i:04d}" + "x" * 300}  # fmt: skip
    figures: dict[str, tuple[float, float]] = {}
    for op in ("PUT", "GET"):
        p50 = {}
        for kind, name in kinds.items():
            if op == "PUT":
                p50[kind] = _p50_ms(
                    lambda i, name=name: s3.put_object(Bucket=bucket, Key=name(i), Body=body), n
                )
            else:
                p50[kind] = _p50_ms(
                    lambda i, name=name: s3.get_object(Bucket=bucket, Key=name(i))["Body"].read(), n
                )
        figures[f"{op} p50 ms, folder a/"] = (p50["plain"], p50["folder a/"])
        figures[f"{op} p50 ms, long segment"] = (p50["plain"], p50["long segment"])
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="long/")
    assert listed["KeyCount"] == n  # the merged listing shows every long key
    # The same n plain keys listed from a bucket without side keys, and from this one (merged by Kennel).
    s3.create_bucket(Bucket=f"{bucket}-plain")
    for i in range(n):
        s3.put_object(Bucket=f"{bucket}-plain", Key=kinds["plain"](i), Body=body)
    alone = _p50_ms(lambda _: s3.list_objects_v2(Bucket=f"{bucket}-plain", Prefix="plain/"), 30)
    merged = _p50_ms(lambda _: s3.list_objects_v2(Bucket=bucket, Prefix="plain/"), 30)
    figures[f"ListObjectsV2 p50 ms, {n} plain keys (bucket with long keys: merged)"] = (alone, merged)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="size of the large object")
    parser.add_argument("--small", type=int, default=300, help="small objects per operation")
    args = parser.parse_args()
    console = Console()
    state = Path(tempfile.mkdtemp(prefix="kennel-bench-s3-"))
    settings = Settings(state_dir=state, port=server.free_port())
    running = server.start_detached(settings, follow_caller=True)
    try:
        creds = admin_credentials(settings)
        assert creds is not None
        gateway = client(running.endpoint, creds.access_key_id, creds.secret_access_key)
        gateway.create_bucket(Bucket="bench-gateway")  # waits for SeaweedFS if it is still starting
        identity = StoreIdentity.load_or_create(state / "objects" / "identity.json")
        s3_port = next(
            arg.split("=", 1)[1]
            for arg in Path(f"/proc/{int((state / 'objects' / 'weed.pid').read_text())}/cmdline")
            .read_bytes()
            .decode()
            .split("\0")
            if arg.startswith("-s3.port=")
        )
        direct = client(f"http://127.0.0.1:{s3_port}", identity.access_key_id, identity.secret)
        direct.create_bucket(Bucket="bench-direct")
        payload = os.urandom(args.mib * 1024 * 1024)
        rows: dict[str, tuple[float, float]] = {}
        for label, s3, bucket in (("direct", direct, "bench-direct"), ("gateway", gateway, "bench-gateway")):
            throughput(s3, bucket, payload)  # warm-up: connections, volumes
            put, get = throughput(s3, bucket, payload)
            figures = {f"PUT {args.mib} MiB MB/s": put, f"GET {args.mib} MiB MB/s": get}
            figures.update(small_ops(s3, bucket, args.small))
            for name, value in figures.items():
                previous = rows.get(name, (0.0, 0.0))
                rows[name] = (value, previous[1]) if label == "direct" else (previous[0], value)
        table = Table(title="S3: gateway vs SeaweedFS directly (same run, same boto3 workload)")
        for column in ("figure", "direct", "gateway", "gateway ÷ direct"):
            table.add_column(column, justify="right" if column != "figure" else "left")
        for name, (base, through) in rows.items():
            table.add_row(name, f"{base:.2f}", f"{through:.2f}", f"{through / base:.2f}×")
        console.print(table)
        gateway.create_bucket(Bucket="bench-side-keys")
        side = Table(title="S3 side keys through the gateway vs plain keys (same run)")
        for column in ("figure", "plain", "side", "side ÷ plain"):
            side.add_column(column, justify="right" if column != "figure" else "left")
        for name, (plain, kept) in side_key_figures(gateway, "bench-side-keys", min(args.small, 100)).items():
            side.add_row(name, f"{plain:.2f}", f"{kept:.2f}", f"{kept / plain:.2f}×")
        console.print(side)
    finally:
        server.stop(state)


if __name__ == "__main__":
    main()
