"""Channel kinds and output forms: several channels, ShardedByS3Key across hosts, a ManifestFile,
CompressionType NONE; a Kennel-known image that needs no script; Estimator.attach."""

from __future__ import annotations

import json

import pytest
from tests.integration.support.roles import service_role
from tests.integration.support.sdk import sdk_session
from tests.integration.support.training import (
    ensure_bucket,
    job_request,
    read_model,
    unique,
    upload_code,
    wait_done,
)

from kennel.ml.synth import SynthSpec, generate

BUCKET = "sagemaker-inputs-tests"
LISTER = r"""
import json, os
def files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
host = os.environ["SM_CURRENT_HOST"]
seen = {name: files(f"/opt/ml/input/data/{name}") for name in json.loads(os.environ["SM_CHANNELS"])}
json.dump(seen, open(f"/opt/ml/model/{host}.json", "w"))
"""


@pytest.fixture(scope="module")
def env(cloud):
    s3 = cloud.client("s3")
    ensure_bucket(s3, BUCKET)
    for i in range(4):
        s3.put_object(Bucket=BUCKET, Key=f"shards/part-{i}.csv", Body=b"1,2\n")
    for name in ("x.txt", "y.txt", "z.txt"):
        s3.put_object(Bucket=BUCKET, Key=f"pool/{name}", Body=name.encode())
    manifest = [{"prefix": f"s3://{BUCKET}/pool/"}, "x.txt", "z.txt"]
    s3.put_object(Bucket=BUCKET, Key="manifests/picked.json", Body=json.dumps(manifest).encode())
    role = service_role(cloud)
    cloud.client("iam").attach_role_policy(
        RoleName="SageMakerRole", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    )
    return {"sm": cloud.client("sagemaker"), "s3": s3, "role": role}


def test_channels_sharding_manifests_and_uncompressed_output(env):
    name = unique("channels")
    code = upload_code(env["s3"], BUCKET, name, {"train.py": LISTER})
    request = job_request(name, env["role"], BUCKET, code, instance_count=2)
    request["InputDataConfig"] = [
        {"ChannelName": "shards", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/shards/",
            "S3DataDistributionType": "ShardedByS3Key"}}},
        {"ChannelName": "picked", "DataSource": {"S3DataSource": {
            "S3DataType": "ManifestFile", "S3Uri": f"s3://{BUCKET}/manifests/picked.json"}}},
    ]  # fmt: skip
    request["OutputDataConfig"]["CompressionType"] = "NONE"
    env["sm"].create_training_job(**request)
    job = wait_done(env["sm"], name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == f"s3://{BUCKET}/{name}/output/model/"
    seen = {}
    for host in ("algo-1", "algo-2"):
        body = env["s3"].get_object(Bucket=BUCKET, Key=f"{name}/output/model/{host}.json")["Body"].read()
        seen[host] = json.loads(body)
    assert seen["algo-1"]["shards"] == ["part-0.csv", "part-2.csv"]
    assert seen["algo-2"]["shards"] == ["part-1.csv", "part-3.csv"]
    assert seen["algo-1"]["picked"] == seen["algo-2"]["picked"] == ["x.txt", "z.txt"]


def test_a_kennel_known_image_trains_without_a_script(env, cloud, tmp_path, monkeypatch):
    data = tmp_path / "data"
    generate(data, SynthSpec(classes=3, per_class=6, size=32, seed=2))
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        env["s3"].upload_file(str(path), BUCKET, f"synth/{path.relative_to(data).as_posix()}")
    name = unique("known-image")
    hyperparameters = {"backbone": "resnet18", "freeze": "none", "image-size": "32", "epochs": "1",
                       "batch-size": "8", "num-workers": "0"}  # fmt: skip
    env["sm"].create_training_job(
        TrainingJobName=name, RoleArn=env["role"],
        AlgorithmSpecification={"TrainingImage": "kennel-training:latest", "TrainingInputMode": "File"},
        HyperParameters=hyperparameters,
        InputDataConfig=[{"ChannelName": "training", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/synth"}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )  # fmt: skip
    job = wait_done(env["sm"], name, timeout_s=300)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    model = read_model(env["s3"], job["ModelArtifacts"]["S3ModelArtifacts"])
    assert {"model.pth", "kennel-model.json", "code/inference.py"} <= set(model)  # deployable as it is

    sagemaker, session = sdk_session(cloud, tmp_path, monkeypatch)
    attached = sagemaker.estimator.Estimator.attach(name, sagemaker_session=session)
    assert attached.image_uri == "kennel-training:latest"
    assert attached.model_data == job["ModelArtifacts"]["S3ModelArtifacts"]
