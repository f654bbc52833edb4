"""Training jobs: start latency, overhead against the same script run by hand, a 4-host job, and
torch_distributed throughput against plain torchrun on loopback — all measured in one run against a
real gateway process.

Figures (ratios against baselines measured in this run):
- CreateTrainingJob → the script's first output line (its first statement prints before any import);
  target ≤ 1.5 s;
- a 1-host job's wall time (CreateTrainingJob → Completed, S3 channel and model upload included)
  against the same script run by hand with `python`; target ≤ by hand + 3 s;
- a 4-host job: completes, 4 log streams, one merged model.tar.gz;
- 2-host torch_distributed DDP throughput (samples/s printed by the script) against the same script
  under two plain `torchrun --nnodes 2` processes on 127.0.0.1; target ≥ 0.8×.

    python benchmarks/training_jobs.py [--steps 300]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

from kennel.cloud import server
from kennel.cloud.cloudstate import admin_credentials
from kennel.settings import Settings

BUCKET = "sagemaker-bench"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:1.4.0-cpu-py3"
_SAGEMAKER = {"Service": "sagemaker.amazonaws.com"}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": _SAGEMAKER, "Action": "sts:AssumeRole"}],
}
QUICK = 'print("first line", flush=True)\nimport time\ntime.sleep(1.0)\nprint("done", flush=True)\n'
DDP = r"""
import os, sys, time, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 300
torch.set_num_threads(1)
dist.init_process_group("gloo")
torch.manual_seed(0)
layers = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
model = DistributedDataParallel(layers)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(64, 256), torch.randint(0, 10, (64,))
for _ in range(20):  # warm-up
    opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
dist.barrier()
started = time.perf_counter()
for _ in range(steps):
    opt.zero_grad(); torch.nn.functional.cross_entropy(model(x), y).backward(); opt.step()
dist.barrier()
rate = steps * 64 * dist.get_world_size() / (time.perf_counter() - started)
if dist.get_rank() == 0:
    print(f"throughput: {rate:.1f} samples/s", flush=True)
dist.destroy_process_group()
"""
RATE = re.compile(r"throughput: ([0-9.]+) samples/s")


def source(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return buffer.getvalue()


class Bench:
    def __init__(self, endpoint: str, key: str, secret: str) -> None:
        session = boto3.session.Session(
            aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1"
        )
        config = Config(retries={"max_attempts": 2})
        self.sm = session.client("sagemaker", endpoint_url=endpoint, config=config)
        self.s3 = session.client("s3", endpoint_url=endpoint, config=config)
        self.logs = session.client("logs", endpoint_url=endpoint, config=config)
        iam = session.client("iam", endpoint_url=endpoint, config=config)
        self.role = iam.create_role(RoleName="BenchRole", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"][
            "Arn"
        ]
        iam.attach_role_policy(
            RoleName="BenchRole", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
        )
        self.s3.create_bucket(Bucket=BUCKET)
        self.s3.put_object(Bucket=BUCKET, Key="data/one.txt", Body=b"x" * 1024)

    def create(
        self, name: str, script: str, *, count: int = 1, hps: dict | None = None, ddp: bool = False
    ) -> float:
        key = f"{name}/source/sourcedir.tar.gz"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=source({"train.py": script}))
        hyper = {k: json.dumps(v) for k, v in (hps or {}).items()}
        hyper.update(
            sagemaker_program='"train.py"', sagemaker_submit_directory=json.dumps(f"s3://{BUCKET}/{key}")
        )
        if ddp:
            hyper["sagemaker_torch_distributed_enabled"] = "true"
        started = time.time()
        self.sm.create_training_job(
            TrainingJobName=name, RoleArn=self.role, HyperParameters=hyper,
            AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            InputDataConfig=[{"ChannelName": "training", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/data/"}}}],
            OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/"},
            ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": count, "VolumeSizeInGB": 30},
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
        )  # fmt: skip
        return started

    def wait(self, name: str) -> tuple[float, dict]:
        while True:
            job = self.sm.describe_training_job(TrainingJobName=name)
            if job["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
                return time.time(), job
            time.sleep(0.05)

    def events(self, name: str) -> list[dict]:
        found = self.logs.filter_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
        )
        return found["events"]


def by_hand(script: str, args: list[str], workdir: Path) -> float:
    path = workdir / "by_hand.py"
    path.write_text(script)
    started = time.perf_counter()
    subprocess.run([sys.executable, str(path), *args], check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def plain_torchrun(script: str, steps: int, workdir: Path) -> float:
    path = workdir / "ddp.py"
    path.write_text(script)
    port = server.free_port()
    base = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
            "--master_addr", "127.0.0.1", "--master_port", str(port)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([*base, "--node_rank", str(rank), str(path), "--steps", str(steps)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for rank in range(2)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    return float(RATE.search(outputs[0]).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kennel-bench-training-"))
    settings = Settings(state_dir=work / "state", port=server.free_port())
    running = server.start_detached(settings, follow_caller=True)
    try:
        creds = admin_credentials(settings)
        assert creds is not None
        bench = Bench(f"http://127.0.0.1:{settings.port}", creds.access_key_id, creds.secret_access_key)
        bench.create("warmup", QUICK)  # first S3 use starts SeaweedFS; not what a job costs
        bench.wait("warmup")

        started = bench.create("quick", QUICK)
        ended, job = bench.wait("quick")
        first = min(e["timestamp"] for e in bench.events("quick") if e["message"] == "first line") / 1000
        hand = by_hand(QUICK, [], work)
        print(f"CreateTrainingJob → first output line: {first - started:.2f} s (target ≤ 1.5 s)")
        wall = ended - started
        print(
            f"1-host job wall time {wall:.2f} s vs by hand {hand:.2f} s: "
            f"+{wall - hand:.2f} s, {wall / hand:.2f}× (target ≤ +3 s)"
        )

        started = bench.create("four", QUICK, count=4)
        ended, job = bench.wait("four")
        streams = {e["logStreamName"] for e in bench.events("four")}
        print(
            f"4-host job: {job['TrainingJobStatus']} in {ended - started:.2f} s, {len(streams)} log streams"
        )

        plain = plain_torchrun(DDP, args.steps, work)
        bench.create("ddp", DDP, count=2, hps={"steps": args.steps}, ddp=True)
        _, job = bench.wait("ddp")
        logged = " ".join(e["message"] for e in bench.events("ddp"))
        found = RATE.search(logged)
        if job["TrainingJobStatus"] != "Completed" or found is None:
            print(f"torch_distributed job: {job['TrainingJobStatus']} {job.get('FailureReason', '')}")
        else:
            rate = float(found.group(1))
            print(f"torch_distributed 2 hosts: {rate:.0f} samples/s vs plain torchrun {plain:.0f}: "
                  f"{rate / plain:.2f}× (target ≥ 0.8×)")  # fmt: skip
    finally:
        server.stop_pid(running.pid)


if __name__ == "__main__":
    main()
