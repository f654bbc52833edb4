"""The seeds' first step through the SageMaker Python SDK v2, unchanged: a PyTorch estimator with a
seed-style hpo.py, fit() for 1 instance (wait=True, logs tailed) and 4 instances (wait=False), then
estimator.model_data deployed with PyTorchModel(entry_point=...) and invoked."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from PIL import Image
from tests.integration.support.roles import service_role
from tests.integration.support.sdk import sdk_session
from tests.integration.support.training import SEED_TRAINING

from kennel.ml.synth import SynthSpec, generate

METRICS = [{"Name": "Test Loss", "Regex": r"Testing Loss: ([0-9\.]+)"}]


@pytest.fixture(scope="module")
def dataset(cloud, tmp_path_factory):
    root = tmp_path_factory.mktemp("seed-data")
    generate(root, SynthSpec(classes=3, per_class=6, size=32, seed=5))
    role = service_role(cloud)
    cloud.client("iam").attach_role_policy(
        RoleName="SageMakerRole", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    )
    return root, role


def _estimator(sagemaker, session, role, count):
    from sagemaker.pytorch import PyTorch

    return PyTorch(
        entry_point="hpo.py",
        source_dir=str(SEED_TRAINING),
        base_job_name="dog-hpo",
        role=role,
        framework_version="1.4.0",
        py_version="py3",
        instance_count=count,
        instance_type="ml.m5.xlarge",
        hyperparameters={"learning_rate": 0.01, "batch_size": 8, "epochs": 2},
        metric_definitions=METRICS,
        sagemaker_session=session,
    )


def test_estimator_fit_deploy_predict(cloud, dataset, tmp_path, monkeypatch):
    root, role = dataset
    sagemaker, session = sdk_session(cloud, tmp_path, monkeypatch)
    # A prefix no other test uses: a channel takes everything below it, and the bucket is shared.
    inputs = session.upload_data(str(root), key_prefix="dogImages-sdk-fit")
    estimator = _estimator(sagemaker, session, role, 1)
    estimator.fit({"training": inputs}, wait=True)  # tails CloudWatch Logs until the job ends
    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed"
    assert description["FinalMetricDataList"][0]["MetricName"] == "Test Loss"
    assert estimator.model_data.endswith(f"{estimator.latest_training_job.name}/output/model.tar.gz")

    many = _estimator(sagemaker, session, role, 4)
    many.fit({"training": inputs}, wait=False)
    many.latest_training_job.wait(logs="None")
    four = many.latest_training_job.describe()
    assert four["TrainingJobStatus"] == "Completed" and four["ResourceConfig"]["InstanceCount"] == 4
    streams = cloud.client("logs").describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{many.latest_training_job.name}/"
    )["logStreams"]
    assert len(streams) == 4

    attached = sagemaker.pytorch.PyTorch.attach(estimator.latest_training_job.name, sagemaker_session=session)
    assert attached.hyperparameters()["learning_rate"] == "0.01"

    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.pytorch import PyTorchModel
    from sagemaker.serializers import IdentitySerializer

    model = PyTorchModel(
        model_data=estimator.model_data,
        role=role,
        entry_point="inference.py",
        source_dir=str(SEED_TRAINING),
        framework_version="1.4",
        py_version="py3",
        sagemaker_session=session,
    )
    predictor = model.deploy(initial_instance_count=1, instance_type="ml.m5.large")
    predictor.serializer = IdentitySerializer("image/jpeg")
    predictor.deserializer = JSONDeserializer()
    image = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(image, format="JPEG")
    scores = predictor.predict(image.getvalue())
    assert len(scores) == 1 and len(scores[0]) == 3
    predictor.delete_endpoint()


def test_kennel_env_role_gives_the_sdk_a_role_identity(cloud, dataset):  # dataset: the role exists
    state = cloud.state_dir
    printed = subprocess.run(
        [sys.executable, "-m", "kennel.cli", "env", "--state-dir", str(state), "--role", "SageMakerRole"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    values = dict(
        line.removeprefix("export ").split("=", 1)
        for line in printed.stdout.splitlines()
        if line.startswith("export")
    )
    sts = cloud.client(
        "sts",
        key=values["AWS_ACCESS_KEY_ID"],
        secret=values["AWS_SECRET_ACCESS_KEY"],
        token=values["AWS_SESSION_TOKEN"],
    )
    assert sts.get_caller_identity()["Arn"].startswith(
        "arn:aws:sts::000000000000:assumed-role/SageMakerRole/"
    )
