# The endpoint's entry point (PyTorchModel(..., entry_point="inference2.py")), in the shape of the
# course's inference2.py: the same network as hpo.py, a JPEG body or a JSON {"url": ...} body, the
# container's default output (the logits as JSON). Offline changes, as in hpo.py: weights=None and
# 32-pixel inputs. A URL is fetched from inside the model server: on Kennel that is a presigned S3 URL.
import io
import json
import logging
import os
import sys

import requests
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
IMAGE_SIZE = 32

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def Net():
    model = models.resnet18(weights=None)
    for param in model.parameters():
        param.requires_grad = False
    num_features = model.fc.in_features
    model.fc = nn.Sequential(nn.Linear(num_features, 128), nn.ReLU(inplace=True), nn.Linear(128, 133))
    return model


def model_fn(model_dir):
    logger.info(f"In model_fn. Model directory is {model_dir}")
    model = Net().to(device)
    with open(os.path.join(model_dir, "model.pth"), "rb") as f:
        logger.info("Loading the dog-classifier model")
        checkpoint = torch.load(f, map_location=device)
        model.load_state_dict(checkpoint)
        logger.info("Model loaded")
    model.eval()
    return model


def input_fn(request_body, content_type=JPEG_CONTENT_TYPE):
    logger.info(f"Deserializing the input data; Content-Type is {content_type}")
    if content_type == JPEG_CONTENT_TYPE:
        return Image.open(io.BytesIO(request_body))
    if content_type == JSON_CONTENT_TYPE:
        request = json.loads(request_body)
        logger.debug(f"Loading the image from {request['url']}")
        img_content = requests.get(request["url"], timeout=30).content
        return Image.open(io.BytesIO(img_content))
    raise Exception(f"Requested unsupported ContentType in content_type: {content_type}")


def predict_fn(input_object, model):
    logger.info("In predict_fn")
    test_transform = transforms.Compose(
        [
            transforms.Resize((IMAGE_SIZE, IMAGE_SIZE)),
            transforms.ToTensor(),
        ]
    )
    input_object = test_transform(input_object.convert("RGB"))
    with torch.no_grad():
        prediction = model(input_object.unsqueeze(0).to(device))
    return prediction
