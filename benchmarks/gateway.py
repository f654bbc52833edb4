"""Gateway overhead: boto3 → signed HTTP → gateway (SigV4 + routing + parsing + IAM + serialization).

Figures, all measured in this run:
- server-side p50/p99 of ``Gateway.handle`` for sts GetCallerIdentity and an IAM-authorised call
  (iam GetUser), from requests signed by botocore — the ≤ 1 ms target is on this number;
- client-observed p50/p99 through boto3, and the same against a baseline uvicorn process that
  answers a fixed GetCallerIdentity response (so boto3 does identical work), printed as a ratio;
- requests/s with 16 concurrent boto3 clients (threads), against the same baseline.

    python benchmarks/gateway.py [--requests 2000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import botocore.awsrequest
from botocore.config import Config
from rich.console import Console
from rich.table import Table

from kennel.cloud import server
from kennel.cloud.cloudstate import Cloud, admin_credentials
from kennel.cloud.gateway import Gateway
from kennel.cloud.protocol import HttpRequest
from kennel.settings import Settings


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def captured_requests(endpoint: str, key: str, secret: str, n: int, call) -> list[HttpRequest]:
    """Requests exactly as botocore signs them, captured before they leave the client."""
    captured: list[HttpRequest] = []

    def grab(request, **_):
        from urllib.parse import urlsplit

        url = urlsplit(request.url)
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        headers.setdefault("Host", url.netloc)  # the HTTP client adds it on the wire; it is signed
        captured.append(HttpRequest(request.method, url.path or "/", url.query, headers, body))
        return botocore.awsrequest.AWSResponse(request.url, 200, {}, None)

    for _ in range(n):
        session = boto3.session.Session()
        client_name, method = call
        client = session.client(
            client_name,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )
        client.meta.events.register("before-send", grab)
        with contextlib.suppress(
            Exception
        ):  # the fake empty response does not parse; only the request matters
            getattr(client, method)()
    return captured


def server_side(requests: list[HttpRequest], gateway: Gateway) -> list[float]:
    times = []
    for request in requests:
        started = time.perf_counter()
        response = gateway.handle(request, "bench")
        times.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, response.body[:300]
    return times


# The baseline server: uvicorn in its own process answering every request with a fixed, well-formed
# GetCallerIdentity response, so boto3 does the same client-side work against it as against Kennel.
BASELINE_APP = """
import uvicorn
BODY = (b'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>'
        b'<Arn>arn:aws:iam::000000000000:user/admin</Arn><UserId>AIDAEXAMPLE</UserId><Account>000000000000</Account>'
        b'</GetCallerIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>'
        b'</GetCallerIdentityResponse>')
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/xml"), (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})
uvicorn.run(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), log_level="warning")
"""


def start_baseline(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", BASELINE_APP, str(port)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("baseline server did not start")


def client_latency(make_call, n: int) -> list[float]:
    call = make_call()
    call()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def throughput(make_call, clients: int, seconds: float) -> float:
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        call = make_call()
        while time.monotonic() < stop:
            call()
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(state_dir=Path(tmp) / "inproc", port=1)
        cloud = Cloud(settings)
        gateway = Gateway(cloud)
        key, secret = cloud.admin.access_key_id, cloud.admin.secret_access_key
        rows = []
        for label, call in (
            ("sts GetCallerIdentity", ("sts", "get_caller_identity")),
            ("iam GetUser", ("iam", "get_user")),
        ):
            requests = captured_requests("http://127.0.0.1:1", key, secret, args.requests // 4, call)
            server_side(requests[:20], gateway)  # warm caches
            times = server_side(requests, gateway)
            rows.append((f"server side, {label}", statistics.median(times), percentile(times, 0.99), None))
        cloud.close()

        live = Settings(state_dir=Path(tmp) / "live", port=server.free_port())
        running = server.start_detached(live, follow_caller=True)
        try:
            creds = admin_credentials(live)
            assert creds is not None

            def kennel_call():
                client = boto3.session.Session().client(
                    "sts",
                    endpoint_url=running.endpoint,
                    region_name="us-east-1",
                    aws_access_key_id=creds.access_key_id,
                    aws_secret_access_key=creds.secret_access_key,
                    config=Config(retries={"max_attempts": 1}),
                )
                return client.get_caller_identity

            trivial_port = server.free_port()
            baseline = start_baseline(trivial_port)

            def trivial_call():
                client = boto3.session.Session().client(
                    "sts",
                    endpoint_url=f"http://127.0.0.1:{trivial_port}",
                    region_name="us-east-1",
                    aws_access_key_id="AKIDEXAMPLE",
                    aws_secret_access_key="x" * 40,
                    config=Config(retries={"max_attempts": 1}),
                )
                return client.get_caller_identity

            k = client_latency(kennel_call, args.requests)
            b = client_latency(trivial_call, args.requests)
            rows.append(
                ("boto3 → Kennel, GetCallerIdentity", statistics.median(k), percentile(k, 0.99), None)
            )
            rows.append(
                ("boto3 → fixed-response server (baseline)", statistics.median(b), percentile(b, 0.99), None)
            )
            kennel_rps = throughput(kennel_call, args.clients, args.seconds)
            base_rps = throughput(trivial_call, args.clients, args.seconds)
            baseline.terminate()
        finally:
            server.stop(live.state_dir)
    table = Table(title="gateway latency")
    for column in ("path", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for name, p50, p99, _ in rows:
        table.add_row(name, f"{p50:.3f}", f"{p99:.3f}")
    console.print(table)
    console.print(f"client p50 ratio Kennel ÷ baseline: {rows[2][1] / rows[3][1]:.2f}×")
    console.print(
        f"throughput with {args.clients} boto3 clients: Kennel {kennel_rps:,.0f} req/s, "
        f"baseline {base_rps:,.0f} req/s "
        f"→ {kennel_rps / base_rps:.2f}× of baseline"
    )


if __name__ == "__main__":
    main()
