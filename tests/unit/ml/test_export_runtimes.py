"""ONNX export and the ONNX Runtime / OpenVINO predictors, on a tiny random-weight ResNet-18."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from kennel.ml import export as export_mod
from kennel.ml import runtimes
from kennel.ml.artifact import ArtifactMeta, load_model_dir, sha256_file, write_model_dir
from kennel.ml.export import (
    ONNX_FILE,
    ExportParityError,
    export_onnx,
    onnx_is_fresh,
    read_sidecar,
    sidecar_path,
)
from kennel.ml.models import Classifier, ModelConfig, build_model
from kennel.ml.runtimes import RUNTIMES, OpenVinoPredictor, load_predictor
from kennel.ml.transforms import Preprocess

SIZE = 64
CLASSES = ["beagle", "boxer", "collie", "husky", "pug"]


def _make_model(seed: int) -> tuple[Classifier, ArtifactMeta]:
    torch.manual_seed(seed)
    cfg = ModelConfig(backbone="resnet18", num_classes=len(CLASSES), head_hidden=(16,))
    model = build_model(cfg).eval()
    meta = ArtifactMeta(
        model=cfg,
        preprocess=Preprocess(image_size=SIZE),
        classes=list(CLASSES),
        labels=[c.title() for c in CLASSES],
    )
    return model, meta


def _write(model_dir: Path, seed: int = 0) -> Path:
    model, meta = _make_model(seed)
    return write_model_dir(model_dir, model, meta)


def _eager_logits(model_dir: Path, batch: torch.Tensor) -> np.ndarray:
    model, _ = load_model_dir(model_dir)
    with torch.inference_mode():
        return model(batch).numpy()


def _assert_close(got: np.ndarray, want: np.ndarray, atol: float = 1e-4) -> None:
    assert got.shape == want.shape and got.dtype == np.float32
    limit = atol * max(1.0, float(np.abs(want).max()))
    assert float(np.abs(got - want).max()) <= limit


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("export") / "model")


@pytest.fixture(scope="module")
def batches() -> dict[int, torch.Tensor]:
    gen = torch.Generator().manual_seed(123)
    return {n: torch.randn(n, 3, SIZE, SIZE, generator=gen) for n in (1, 4)}


def test_export_writes_graph_and_sidecar(model_dir: Path) -> None:
    result = export_onnx(model_dir)
    assert result.path == model_dir / ONNX_FILE and result.path.is_file()
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    assert result.seconds > 0

    graph = onnx.load(str(result.path)).graph
    (inp,), (out,) = graph.input, graph.output
    assert (inp.name, out.name) == ("input", "logits")
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].HasField("dim_value")  # dynamic batch
    assert [d.dim_value for d in dims[1:]] == [3, SIZE, SIZE]

    sidecar = json.loads(sidecar_path(result.path).read_text())
    assert sidecar["weights_sha256"] == sha256_file(model_dir / "model.pth")
    assert sidecar["opset"] == 17
    assert sidecar["max_abs_diff"] == result.max_abs_diff
    assert sidecar["torch_version"] == torch.__version__
    assert onnx_is_fresh(model_dir)


def test_parity_failure_raises_and_leaves_no_graph(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = export_mod._run_exported

    def drifting(path: Path, batch: np.ndarray) -> np.ndarray:
        return real_run(path, batch) + 0.5

    monkeypatch.setattr(export_mod, "_run_exported", drifting)
    out = tmp_path / "drift.onnx"
    with pytest.raises(ExportParityError) as info:
        export_onnx(model_dir, out)
    assert info.value.max_abs_diff == pytest.approx(0.5, abs=1e-3)
    assert "0.5" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # neither the graph nor a temp file survives


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino-f32"])
def test_fp32_runtimes_match_eager(model_dir: Path, batches: dict[int, torch.Tensor], runtime: str) -> None:
    predictor = load_predictor(model_dir, runtime, num_threads=2)
    assert predictor.runtime == runtime and predictor.precision == "fp32"
    assert predictor.meta.classes == CLASSES
    predictor.warmup()
    for n, batch in batches.items():
        want = _eager_logits(model_dir, batch)
        _assert_close(predictor.predict(batch), want)
        _assert_close(predictor.predict(batch.numpy()), want)  # numpy in, same answer
        assert predictor.predict(batch).shape == (n, len(CLASSES))


def test_openvino_default_precision_is_close_and_agrees_on_clear_cases(
    model_dir: Path, batches: dict[int, torch.Tensor]
) -> None:
    predictor = load_predictor(model_dir, "openvino")
    # bf16 on CPUs with native bf16 (this one), f32 elsewhere; either way it must say which.
    assert predictor.runtime == "openvino" and predictor.precision in {"bf16", "fp32"}
    batch = torch.randn(32, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    got, want = predictor.predict(batch), _eager_logits(model_dir, batch)
    assert got.shape == want.shape and np.isfinite(got).all()
    scale = max(1.0, float(np.abs(want).max()))
    # bf16 keeps 8 mantissa bits; a few percent of the logit scale is its measured envelope here.
    assert float(np.abs(got - want).max()) <= 0.05 * scale
    ordered = np.sort(want, axis=1)
    clear = (ordered[:, -1] - ordered[:, -2]) > 0.1 * scale  # rows bf16 rounding cannot flip
    assert clear.sum() >= 4
    assert (got.argmax(1)[clear] == want.argmax(1)[clear]).all()


def test_openvino_caches_compiled_model_in_model_dir(model_dir: Path) -> None:
    predictor = load_predictor(model_dir, "openvino-f32")
    assert isinstance(predictor, OpenVinoPredictor)
    assert predictor.cache_dir == model_dir / "ov-cache"
    assert any(predictor.cache_dir.iterdir())


def test_stale_sidecar_triggers_reexport(tmp_path: Path, batches: dict[int, torch.Tensor]) -> None:
    model_dir = _write(tmp_path / "model", seed=1)
    export_onnx(model_dir)
    old_sha = read_sidecar(model_dir / ONNX_FILE)["weights_sha256"]

    _write(model_dir, seed=2)  # retrained: new weights, same layout
    assert not onnx_is_fresh(model_dir)

    predictor = load_predictor(model_dir, "onnxruntime")
    new_sha = read_sidecar(model_dir / ONNX_FILE)["weights_sha256"]
    assert new_sha != old_sha and new_sha == sha256_file(model_dir / "model.pth")
    assert onnx_is_fresh(model_dir)
    _assert_close(predictor.predict(batches[4]), _eager_logits(model_dir, batches[4]))


def test_missing_sidecar_counts_as_stale(tmp_path: Path, model_dir: Path) -> None:
    copy = Path(shutil.copytree(model_dir, tmp_path / "copy", ignore=shutil.ignore_patterns("ov-cache")))
    export_onnx(copy)
    sidecar_path(copy / ONNX_FILE).unlink()
    assert not onnx_is_fresh(copy)


def test_read_only_model_dir_exports_to_temp(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = Path(
        shutil.copytree(model_dir, tmp_path / "ro", ignore=shutil.ignore_patterns("model.onnx*", "ov-*"))
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(export_mod.tempfile, "tempdir", str(scratch))
    # Tests run as root in CI, where chmod cannot make a directory read-only; fake the probe instead.
    real_probe = export_mod._is_writable_dir
    monkeypatch.setattr(
        export_mod, "_is_writable_dir", lambda p: not p.is_relative_to(copy) and real_probe(p)
    )

    predictor = load_predictor(copy, "openvino-f32")
    assert not (copy / ONNX_FILE).exists()
    assert predictor.onnx_path.is_relative_to(scratch)
    assert predictor.cache_dir.is_relative_to(scratch)
    again = load_predictor(copy, "onnxruntime")  # reuses the temp export instead of exporting again
    assert again.onnx_path == predictor.onnx_path


def test_unknown_runtime_lists_choices(model_dir: Path) -> None:
    with pytest.raises(ValueError) as info:
        load_predictor(model_dir, "tensorrt")
    for name in RUNTIMES:
        assert name in str(info.value)


def test_auto_serves_an_exact_fast_runtime(
    model_dir: Path, batches: dict[int, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtimes.torch.cuda, "is_available", lambda: False)
    chosen = load_predictor(model_dir, "auto")
    assert chosen.runtime in runtimes.EXACT_RUNTIMES and chosen.precision == "fp32"
    _assert_close(chosen.predict(batches[4]), _eager_logits(model_dir, batches[4]))
    monkeypatch.setattr(runtimes, "runtime_available", lambda name: name in {"torch", "onnxruntime"})
    assert load_predictor(model_dir, "auto").runtime == "onnxruntime"
    monkeypatch.setattr(runtimes, "runtime_available", lambda name: name == "torch")
    assert load_predictor(model_dir, "auto").runtime == "torch"


def test_auto_falls_back_when_a_runtime_fails(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("plugin failed to load")

    monkeypatch.setattr(runtimes.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtimes, "OpenVinoPredictor", broken)
    with caplog.at_level(logging.WARNING, logger="kennel.ml"):
        assert load_predictor(model_dir, "auto").runtime == "onnxruntime"
    assert any("openvino-f32 could not load" in r.getMessage() for r in caplog.records)


def test_bad_input_shape_is_a_clear_error(model_dir: Path) -> None:
    predictor = load_predictor(model_dir, "onnxruntime")
    with pytest.raises(ValueError, match=r"\[N>=1, 3, 64, 64\]"):
        predictor.predict(np.zeros((2, 3, 32, 32), dtype=np.float32))


def test_torch_predictor_accepts_numpy_and_warms_up(
    model_dir: Path, batches: dict[int, torch.Tensor]
) -> None:
    predictor = load_predictor(model_dir, "torch")
    predictor.warmup()
    _assert_close(predictor.predict(batches[4].numpy()), _eager_logits(model_dir, batches[4]))
