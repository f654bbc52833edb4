"""The load-time choice of runtime (``KENNEL_RUNTIME=auto``, the handler's default), with fake runtimes and
fake timings so each decision is deterministic and fast; plus the handler's override and export cache."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kennel.ml import runtimes
from kennel.ml.artifact import ArtifactError, ArtifactMeta, write_model_dir
from kennel.ml.export import EXPORT_DIR_ENV, ONNX_FILE
from kennel.ml.handler import model_fn
from kennel.ml.models import ModelConfig, build_model
from kennel.ml.runtimes import choose_predictor
from kennel.ml.transforms import Preprocess

SIZE = 8


class FakePredictor:
    """Logits that are a fixed function of the batch, shifted by ``error`` (0: exact)."""

    precision = "fp32"

    def __init__(self, runtime: str, error: float = 0.0) -> None:
        self.runtime = runtime
        self.error = error
        self.meta = SimpleNamespace(preprocess=SimpleNamespace(image_size=SIZE))
        self.calls = 0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        array = np.asarray(batch, dtype=np.float32)
        return array.reshape(len(array), -1)[:, :5] + np.float32(self.error)

    def warmup(self) -> None:
        pass


def loader(errors: dict[str, float] | None = None, broken: tuple[str, ...] = ()):
    errors = errors or {}

    def load(model_dir: Path, name: str, threads: int | None, export_dir: Path | None) -> FakePredictor:
        if name in broken:
            raise RuntimeError(f"{name} plugin failed to load")
        return FakePredictor(name, errors.get(name, 0.0))

    return load


def timer(seconds: dict[str, float]):
    return lambda predictor, batches: seconds[predictor.runtime]


@pytest.fixture(autouse=True)
def _installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtimes, "runtime_available", lambda name: True)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        ({"onnxruntime": 0.020, "openvino-f32": 0.010}, "openvino-f32"),
        ({"onnxruntime": 0.010, "openvino-f32": 0.020}, "onnxruntime"),
    ],
)
def test_the_faster_exact_runtime_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, seconds: dict[str, float], expected: str
) -> None:
    with caplog.at_level(logging.INFO, logger="kennel.ml"):
        chosen = choose_predictor(tmp_path, load=loader(), timer=timer(seconds))
    assert chosen.runtime == expected
    line = next(r.getMessage() for r in caplog.records if "runtime auto measured" in r.getMessage())
    # Both figures are in the log line, and the decision with them.
    assert "onnxruntime 10.0 ms" in line or "onnxruntime 20.0 ms" in line
    assert "openvino-f32" in line and f"serving {expected}" in line


def test_rounds_stop_at_the_budget(tmp_path: Path) -> None:
    rounds: list[str] = []

    def slow(predictor: FakePredictor, batches: object) -> float:
        rounds.append(predictor.runtime)
        return 0.01

    choose_predictor(tmp_path, load=loader(), timer=slow, rounds=3, budget_s=0.0)
    assert rounds == ["onnxruntime", "openvino-f32"]  # one interleaved round, then over budget


def test_a_runtime_that_fails_to_load_falls_back_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fast_but_broken = timer({"onnxruntime": 0.02, "openvino-f32": 0.01})
    with caplog.at_level(logging.INFO, logger="kennel.ml"):
        chosen = choose_predictor(tmp_path, load=loader(broken=("openvino-f32",)), timer=fast_but_broken)
    assert chosen.runtime == "onnxruntime"
    assert any(
        "openvino-f32 could not load" in r.getMessage() and "plugin failed" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )


def test_eager_torch_serves_when_no_faster_runtime_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="kennel.ml"):
        chosen = choose_predictor(
            tmp_path, load=loader(broken=("onnxruntime", "openvino-f32")), timer=timer({})
        )
    assert chosen.runtime == "torch"
    assert any("serving eager torch" in r.getMessage() for r in caplog.records)


def test_a_runtime_that_is_not_exact_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="kennel.ml"):
        chosen = choose_predictor(
            tmp_path,
            load=loader(errors={"openvino-f32": 1e-2}),
            timer=timer({"onnxruntime": 0.02, "openvino-f32": 0.01}),
        )
    assert chosen.runtime == "onnxruntime"
    assert any("openvino-f32 is not exact" in r.getMessage() for r in caplog.records)


def test_an_uninstalled_runtime_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtimes, "runtime_available", lambda name: name != "openvino-f32")
    chosen = choose_predictor(
        tmp_path, load=loader(), timer=timer({"onnxruntime": 0.02, "openvino-f32": 0.01})
    )
    assert chosen.runtime == "onnxruntime"


def test_a_broken_artifact_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    def corrupt(*args: object) -> FakePredictor:
        raise ArtifactError("model.pth does not match the checksum")

    with pytest.raises(ArtifactError):
        choose_predictor(tmp_path, load=corrupt, timer=timer({}))


# --- the handler: default, override, export cache --------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", num_classes=3, head_hidden=(8,))
    meta = ArtifactMeta(
        model=cfg, preprocess=Preprocess(image_size=32), classes=["a", "b", "c"], labels=["A", "B", "C"]
    )
    return write_model_dir(tmp_path_factory.mktemp("choice") / "model", build_model(cfg), meta)


def test_handler_defaults_to_the_measured_choice(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path | None] = []

    def fake_choose(path: Path, *, num_threads: int | None, export_dir: Path | None) -> FakePredictor:
        calls.append(export_dir)
        return FakePredictor("onnxruntime")

    monkeypatch.setattr(runtimes, "choose_predictor", fake_choose)
    monkeypatch.setattr(runtimes.torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("KENNEL_RUNTIME", raising=False)
    monkeypatch.setenv(EXPORT_DIR_ENV, str(tmp_path / "exports"))
    assert model_fn(str(model_dir)).predictor.runtime == "onnxruntime"
    assert calls == [tmp_path / "exports"]


def test_kennel_runtime_overrides_the_choice(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("KENNEL_RUNTIME names a runtime: nothing may be measured")

    monkeypatch.setattr(runtimes, "choose_predictor", refuse)
    monkeypatch.setenv("KENNEL_RUNTIME", "onnxruntime")
    exports = tmp_path / "exports"
    monkeypatch.setenv(EXPORT_DIR_ENV, str(exports))
    serving = model_fn(str(model_dir))
    assert serving.predictor.runtime == "onnxruntime"
    # The export went to the shared directory, not into the model directory.
    assert (exports / ONNX_FILE).is_file() and not (model_dir / ONNX_FILE).exists()
    monkeypatch.setenv("KENNEL_RUNTIME", "torch")
    assert model_fn(str(model_dir)).predictor.runtime == "torch"
