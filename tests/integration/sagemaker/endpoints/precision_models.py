"""Two tiny ResNet-18 model directories for the precision gate, each with its validation sample.

One's classes are far apart (reduced precision keeps every top-1); the other's last layer makes the
logits nearly tied (bf16's 8-bit mantissa flips them). The sample's labels are the fp32 predictions, so
exact accuracy on it is 100 % and every flip is an accuracy drop too.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kennel.ml import calibration
from kennel.ml.artifact import ArtifactMeta, write_model_dir
from kennel.ml.models import ModelConfig, build_model
from kennel.ml.transforms import Preprocess, normalize

SIZE = 64
CLASSES = ["beagle", "boxer", "collie", "husky", "pug"]
SAMPLE = 24


def gate_model_dir(path: Path, *, tied: bool) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", num_classes=len(CLASSES), head_hidden=(16,))
    model = build_model(cfg).eval()
    last = model.head[-1]
    with torch.no_grad():
        if tied:  # every class scores the same up to a 1e-4 relative wobble: bf16 cannot tell them apart
            base = torch.randn(1, last.in_features)
            last.weight.copy_(base + 1e-4 * torch.randn(len(CLASSES), last.in_features) * base.abs())
            last.bias.zero_()
        else:  # far apart: the winning logit leads by a wide margin
            last.weight.mul_(50.0)
    meta = ArtifactMeta(model=cfg, preprocess=Preprocess(image_size=SIZE), classes=CLASSES, labels=CLASSES)
    write_model_dir(path, model, meta)
    # The sample: random images labelled with what fp32 predicts for them.
    gen = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (SAMPLE, 3, SIZE, SIZE), generator=gen, dtype=torch.uint8)
    with torch.inference_mode():
        targets = model(normalize(pixels, meta.preprocess)).argmax(1).numpy()
    calibration.write(path, pixels.numpy(), targets)
    return path
