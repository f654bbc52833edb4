"""A seed-style ``inference.py`` (written here as the dog-breed project writes it) served unmodified,
then replaced by a Kennel-packaged model with UpdateEndpoint while requests keep coming.
"""

from __future__ import annotations

import contextlib
import io
import json
import runpy
import tarfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from botocore.exceptions import ClientError
from PIL import Image
from tests.integration.support.endpoints import deploy, jpeg, kennel_artifact, wait_in_service
from tests.integration.support.roles import service_role

ACCOUNT = "000000000000"


@pytest.fixture(scope="module", autouse=True)
def _sagemaker_role(cloud) -> None:
    service_role(cloud)  # SageMaker refuses a role that is missing or does not trust it


SEED_SCRIPT = """
import io
import json
import logging
import os
import sys
import urllib.request

import torch
import torch.nn as nn
import torchvision.models as models
import torchvision.transforms as transforms
from PIL import Image

logger = logging.getLogger(__name__)
logger.setLevel(logging.DEBUG)
logger.addHandler(logging.StreamHandler(sys.stdout))

JSON_CONTENT_TYPE = "application/json"
JPEG_CONTENT_TYPE = "image/jpeg"
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def Net():
    model = models.resnet18(weights=None)
    for param in model.parameters():
        param.requires_grad = False
    num_features = model.fc.in_features
    model.fc = nn.Sequential(nn.Linear(num_features, 16), nn.ReLU(inplace=True), nn.Linear(16, 5))
    return model


def model_fn(model_dir):
    logger.info("In model_fn. Model directory is - %s", model_dir)
    model = Net().to(device)
    with open(os.path.join(model_dir, "model.pth"), "rb") as f:
        model.load_state_dict(torch.load(f, map_location=device))
    model.eval()
    return model


def input_fn(request_body, content_type=JPEG_CONTENT_TYPE):
    logger.info(f"Incoming Requests Content-Type is: {content_type}")
    if content_type == JPEG_CONTENT_TYPE:
        return Image.open(io.BytesIO(request_body))
    if content_type == JSON_CONTENT_TYPE:
        request = json.loads(request_body)
        url = request["url"]
        img_content = urllib.request.urlopen(url).read()
        return Image.open(io.BytesIO(img_content))
    raise Exception("Requested unsupported ContentType in content_type: {}".format(content_type))


def predict_fn(input_object, model):
    test_transform = transforms.Compose([
        transforms.Resize((64, 64)),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])
    input_object = test_transform(input_object.convert("RGB"))
    with torch.no_grad():
        prediction = model(input_object.unsqueeze(0).to(device))
    return prediction


def output_fn(predictions, content_type):
    assert content_type == JSON_CONTENT_TYPE
    res = predictions.cpu().numpy().tolist()
    return json.dumps(res)
"""


def seed_artifact(root: Path) -> tuple[Path, Path]:
    model_dir = root / "seed"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "inference.py").write_text(SEED_SCRIPT)
    net = runpy.run_path(str(model_dir / "code" / "inference.py"))["Net"]()
    torch.save(net.state_dict(), model_dir / "model.pth")
    with tarfile.open(root / "seed.tar.gz", "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    return root / "seed.tar.gz", model_dir


@pytest.fixture(scope="module")
def seeded(cloud, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("seed")
    sm = cloud.client("sagemaker")
    suffix = uuid.uuid4().hex[:6]
    seed_tar, seed_dir = seed_artifact(root)
    name = deploy(sm, f"seed-{suffix}", f"file://{seed_tar}")
    # The configuration the update switches to: the Kennel-packaged model, built meanwhile.
    target = f"kennel-{suffix}"
    sm.create_model(ModelName=target, PrimaryContainer={"ModelDataUrl": str(kennel_artifact(root))})
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": target,
        "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large",
    }
    sm.create_endpoint_config(EndpointConfigName=target, ProductionVariants=[variant])
    wait_in_service(sm, name)
    yield {"seed": name, "seed_dir": seed_dir, "target": target}
    with contextlib.suppress(ClientError):
        sm.delete_endpoint(EndpointName=name)


def test_seed_script_is_served_unmodified(cloud, seeded) -> None:
    rt = cloud.client("sagemaker-runtime")
    image = jpeg((10, 120, 240))
    script = runpy.run_path(str(seeded["seed_dir"] / "code" / "inference.py"))
    model = script["model_fn"](str(seeded["seed_dir"]))
    expected = script["predict_fn"](Image.open(io.BytesIO(image)), model).numpy()
    assert (
        cloud.client("sagemaker")
        .describe_model(ModelName=seeded["seed"])["PrimaryContainer"]["ModelDataUrl"]
        .startswith("file://")
    )
    served = rt.invoke_endpoint(EndpointName=seeded["seed"], Body=image, ContentType="image/jpeg")
    assert np.allclose(json.loads(served["Body"].read()), expected, atol=1e-4)

    # By URL: the sandboxed model reaches nothing on the host's loopback but the gateway, so the picture
    # is an S3 object behind a presigned URL (as it would be on AWS), fetched through the gateway.
    s3 = cloud.client("s3")
    bucket = f"seed-pictures-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dog.jpg", Body=image, ContentType="image/jpeg")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "dog.jpg"}, ExpiresIn=600)
    by_url = rt.invoke_endpoint(
        EndpointName=seeded["seed"], Body=json.dumps({"url": url}), ContentType="application/json"
    )
    assert np.allclose(json.loads(by_url["Body"].read()), expected, atol=1e-4)


def test_update_endpoint_switches_models_without_failed_requests(cloud, seeded) -> None:
    sm = cloud.client("sagemaker")
    name, target = seeded["seed"], seeded["target"]
    stop, answers, errors = threading.Event(), [], []

    def load() -> None:
        client = cloud.client("sagemaker-runtime")
        while not stop.is_set():
            try:
                reply = client.invoke_endpoint(EndpointName=name, Body=jpeg(), ContentType="image/jpeg")
                scores = json.loads(reply["Body"].read())
                answers.append("seed" if isinstance(scores[0], list) else "kennel")  # [[...]] vs [...]
            except Exception as exc:  # every failure counts against the update
                errors.append(exc)
            time.sleep(0.05)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        sm.update_endpoint(EndpointName=name, EndpointConfigName=target)
        updating = sm.describe_endpoint(EndpointName=name)
        assert updating["EndpointStatus"] == "Updating"
        assert updating["PendingDeploymentSummary"]["EndpointConfigName"] == target
        with pytest.raises(ClientError, match="Cannot update in-progress endpoint"):
            sm.update_endpoint(EndpointName=name, EndpointConfigName=target)
        done = wait_in_service(sm, name)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert done["EndpointConfigName"] == target and "PendingDeploymentSummary" not in done
    assert answers[0] == "seed" and answers[-1] == "kennel" and len(answers) > 10
