# The serving half in the seeds' style: model_fn loads what hpo.py saved, JSON out.
import io
import json
import os

import torch
import torch.nn as nn
import torchvision.transforms as transforms
from PIL import Image


def model_fn(model_dir):
    state = torch.load(os.path.join(model_dir, "model.pth"), map_location="cpu")
    classes = state["4.weight"].shape[0]
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(128, classes),
    )
    model.load_state_dict(state)
    model.eval()
    return model


def input_fn(request_body, content_type="image/jpeg"):
    if content_type == "image/jpeg":
        return Image.open(io.BytesIO(request_body)).convert("RGB")
    raise Exception(f"Requested unsupported ContentType in content_type: {content_type}")


def predict_fn(input_object, model):
    transform = transforms.Compose([transforms.Resize((32, 32)), transforms.ToTensor()])
    with torch.no_grad():
        return model(transform(input_object).unsqueeze(0))


def output_fn(predictions, content_type):
    return json.dumps(predictions.tolist())
