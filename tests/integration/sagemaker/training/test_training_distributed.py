"""Multi-host training jobs: hosts of one job form one torch.distributed job (gloo on CPU), either by
joining it themselves from SM_HOSTS/MASTER_ADDR or through torch_distributed (torchrun per host)."""

from __future__ import annotations

import json

import pytest
from tests.integration.support.roles import service_role
from tests.integration.support.training import (
    ensure_bucket,
    host_logs,
    job_request,
    read_model,
    unique,
    upload_code,
    wait_done,
)

BUCKET = "sagemaker-distributed-tests"

SELF_JOIN = r"""
import json, os, torch, torch.distributed as dist
hosts = json.loads(os.environ["SM_HOSTS"])
rank = hosts.index(os.environ["SM_CURRENT_HOST"])
dist.init_process_group("gloo", init_method=f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}",
                        world_size=len(hosts), rank=rank)
value = torch.tensor([float(rank + 1)])
dist.all_reduce(value)
print(f"rank {rank} of {len(hosts)} sum {value.item()}", flush=True)
if rank == 0:
    json.dump({"sum": value.item(), "world": dist.get_world_size()}, open("/opt/ml/model/result.json", "w"))
dist.destroy_process_group()
"""

DDP = r"""
import json, os, sys, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
model = DistributedDataParallel(torch.nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
torch.manual_seed(100 + rank)  # each rank sees different data: only synced gradients keep weights equal
for step in range(5):
    x = torch.randn(8, 4)
    loss = model(x).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    print(f"rank {rank} step {step} loss {loss.item():.4f}", flush=True)
weights = [p.detach().clone() for p in model.parameters()]
gathered = [[torch.zeros_like(w) for _ in range(world)] for w in weights]
for w, out in zip(weights, gathered):
    dist.all_gather(out, w)
same = all(torch.equal(out[0], o) for out in gathered for o in out)
if rank == 0:
    json.dump({"world": world, "weights_equal": same, "host": os.environ["SM_CURRENT_HOST"]},
              open("/opt/ml/model/ddp.json", "w"))
dist.destroy_process_group()
# torch 2.14's gloo aborts now and then in the interpreter's finalisation after DDP on a loaded machine
sys.stdout.flush()
os._exit(0)
"""


@pytest.fixture(scope="module")
def env(cloud):
    s3 = cloud.client("s3")
    ensure_bucket(s3, BUCKET)
    role = service_role(cloud)
    cloud.client("iam").attach_role_policy(
        RoleName="SageMakerRole", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    )
    return {"sm": cloud.client("sagemaker"), "s3": s3, "role": role, "logs": cloud.client("logs")}


def test_hosts_join_gloo_themselves(env):
    name = unique("selfjoin")
    code = upload_code(env["s3"], BUCKET, name, {"train.py": SELF_JOIN})
    env["sm"].create_training_job(**job_request(name, env["role"], BUCKET, code, instance_count=2))
    job = wait_done(env["sm"], name, timeout_s=240)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert json.loads(read_model(env["s3"], job["ModelArtifacts"]["S3ModelArtifacts"])["result.json"]) == {
        "sum": 3.0, "world": 2,
    }  # fmt: skip
    streams = env["logs"].describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
    )["logStreams"]
    assert sorted(s["logStreamName"].rsplit("-", 1)[0] for s in streams) == [
        f"{name}/algo-1",
        f"{name}/algo-2",
    ]


def test_torch_distributed_synchronises_gradients(env):
    name = unique("ddp")
    code = upload_code(env["s3"], BUCKET, name, {"train.py": DDP})
    request = job_request(name, env["role"], BUCKET, code, instance_count=2)
    request["HyperParameters"].update(
        sagemaker_torch_distributed_enabled="true", sagemaker_instance_type='"ml.p3.2xlarge"'
    )
    request["ResourceConfig"]["InstanceType"] = (
        "ml.p3.2xlarge"  # the SDK wants a GPU type; it runs on the CPU
    )
    env["sm"].create_training_job(**request)
    job = wait_done(env["sm"], name, timeout_s=240)
    assert job["TrainingJobStatus"] == "Completed", host_logs(env["logs"], name)
    result = json.loads(read_model(env["s3"], job["ModelArtifacts"]["S3ModelArtifacts"])["ddp.json"])
    assert result == {"world": 2, "weights_equal": True, "host": "algo-1"}


def test_two_multi_host_jobs_at_once_do_not_collide(env):
    names = [unique("pair") for _ in range(2)]
    for name in names:
        code = upload_code(env["s3"], BUCKET, name, {"train.py": SELF_JOIN})
        env["sm"].create_training_job(**job_request(name, env["role"], BUCKET, code, instance_count=2))
    for name in names:
        job = wait_done(env["sm"], name, timeout_s=240)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
