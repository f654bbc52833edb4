"""The precision gate: judged figures (a table), and bf16 / int8 proven or refused on real models
(tests/integration/sagemaker/endpoints/precision_models.py builds them: one far apart, one with nearly
tied logits)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.integration.sagemaker.endpoints.precision_models import SAMPLE, gate_model_dir

from kennel.ml import calibration
from kennel.ml.artifact import load_model_dir, write_model_dir
from kennel.ml.precision import (
    RECORD_FILE,
    PrecisionGateError,
    gated_predictor,
    judge,
    reduced_predictor,
)
from kennel.ml.runtimes import load_predictor
from kennel.ml.transforms import normalize


@pytest.fixture(scope="module")
def apart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gate_model_dir(tmp_path_factory.mktemp("gate") / "apart", tied=False)


@pytest.fixture(scope="module")
def tied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gate_model_dir(tmp_path_factory.mktemp("gate") / "tied", tied=True)


def _logits(rows: list[list[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32)


@pytest.mark.parametrize(
    ("reduced", "targets", "passed", "reason"),
    [
        ([[2, 1], [0, 3], [5, 1], [1, 4]], [0, 1, 0, 1], True, "passed"),
        ([[1, 2], [0, 3], [5, 1], [1, 4]], [0, 1, 0, 1], False, "agreement too low; accuracy drops too much"),
        # A flip onto the right class where fp32 was wrong: agreement falls, accuracy does not.
        ([[2, 1], [0, 3], [5, 1], [4, 1]], [0, 1, 0, 0], False, "agreement too low"),
        ([[2, 1], [0, 3], [5, 1], [np.nan, 4]], [0, 1, 0, 1], False, "non-finite logits"),
        ([[2, 1], [0, 3], [5, 1]], [0, 1, 0, 1], False, "the logits' shapes differ"),
    ],
)  # fmt: skip
def test_judge(reduced: list, targets: list, passed: bool, reason: str) -> None:
    exact = _logits([[2, 1], [0, 3], [5, 1], [1, 4]])
    figures = judge("bf16", exact, _logits(reduced), np.asarray(targets))
    assert (figures.passed, figures.reason) == (passed, reason)


def test_judge_allows_a_small_drop_and_counts_points() -> None:
    exact = np.eye(4, dtype=np.float32)[[0] * 200]
    reduced = exact.copy()
    reduced[0] = [0, 1, 0, 0]  # 1 of 200 flips: 99.5 % agreement, 0.5 points lost
    figures = judge("int8", exact, reduced, np.zeros(200, np.int64))
    assert figures.passed and figures.agreement == 0.995 and round(figures.drop_points, 6) == 0.5
    assert "99.5 %" in figures.describe() and "drop 0.5 points" in figures.describe()


def test_judge_without_a_sample_refuses() -> None:
    figures = judge("bf16", np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, np.int64))
    assert not figures.passed and figures.samples == 0


def test_bf16_passes_where_it_agrees_and_records_why(apart: Path, tmp_path: Path) -> None:
    exact = load_predictor(apart, "openvino-f32", export_dir=tmp_path)
    served = gated_predictor(apart, "bf16", exact, export_dir=tmp_path)
    if served is exact:  # a CPU without native bf16: the gate must say so rather than pretend
        record = json.loads((tmp_path / RECORD_FILE).read_text()) if (tmp_path / RECORD_FILE).exists() else {}
        assert not record or not record["gates"]["bf16"]["figures"]["passed"]
        pytest.skip("this CPU has no native bf16")
    assert served.runtime == "openvino-bf16" and served.precision == "bf16"
    entry = json.loads((tmp_path / RECORD_FILE).read_text())["gates"]["bf16"]
    assert entry["figures"]["agreement"] == 1.0 and entry["serving"] == "openvino-bf16"
    assert entry["figures"]["samples"] == SAMPLE
    meta = json.loads((apart / "kennel-model.json").read_text())
    assert meta["serving"]["gates"]["bf16"]["figures"]["passed"] is True  # writable model dir: there too


def test_bf16_is_refused_where_logits_are_tied(tied: Path, tmp_path: Path, caplog) -> None:
    exact = load_predictor(tied, "openvino-f32", export_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="kennel.ml.precision"):
        served = gated_predictor(tied, "bf16", exact, export_dir=tmp_path)
    assert served is exact
    assert "precision gate refused bf16" in caplog.text and "agreement" in caplog.text
    with pytest.raises(PrecisionGateError, match=r"refused bf16.*KENNEL_PRECISION_STRICT"):
        gated_predictor(tied, "bf16", exact, export_dir=tmp_path, strict=True)


def test_int8_is_quantized_once_and_its_verdict_reused(apart: Path, tmp_path: Path, caplog) -> None:
    exact = load_predictor(apart, "openvino-f32", export_dir=tmp_path)
    first = gated_predictor(apart, "int8", exact, export_dir=tmp_path)
    built = sorted(p.name for p in tmp_path.glob("model-int8-*.xml"))
    assert len(built) == 1
    figures = json.loads((tmp_path / RECORD_FILE).read_text())["gates"]["int8"]["figures"]
    assert figures["samples"] == SAMPLE
    assert (first.runtime == "openvino-int8") == figures["passed"]
    with caplog.at_level(logging.INFO, logger="kennel.ml.precision"):
        gated_predictor(apart, "int8", exact, export_dir=tmp_path)
    assert "verdict reused" in caplog.text and "quantized with NNCF" not in caplog.text
    assert sorted(p.name for p in tmp_path.glob("model-int8-*.xml")) == built


def test_int8_answers_match_eager_closely_on_a_separated_model(apart: Path, tmp_path: Path) -> None:
    reduced = reduced_predictor(apart, "int8", export_dir=tmp_path)
    model, meta = load_model_dir(apart)
    batch = torch.from_numpy(np.load(apart / calibration.SAMPLE_FILE)["pixels"][:8])
    inputs = normalize(batch, meta.preprocess)
    with torch.inference_mode():
        want = model(inputs).numpy()
    got = reduced.predict(inputs.numpy())
    assert (got.argmax(1) == want.argmax(1)).all()


def test_a_model_without_a_sample_serves_exact_and_says_why(tmp_path: Path, apart: Path, caplog) -> None:
    bare = tmp_path / "bare"
    model, meta = load_model_dir(apart)
    write_model_dir(bare, model, meta)
    exact = load_predictor(bare, "torch")
    with caplog.at_level(logging.WARNING, logger="kennel.ml.precision"):
        assert gated_predictor(bare, "bf16", exact, export_dir=tmp_path / "x") is exact
    assert "has no calibration.npz" in caplog.text
    with pytest.raises(Exception, match=r"calibrates on calibration\.npz"):
        reduced_predictor(bare, "int8")


def test_unknown_precision_is_refused(apart: Path) -> None:
    with pytest.raises(ValueError, match="fp32, bf16, int8"):
        gated_predictor(apart, "fp8", load_predictor(apart, "torch"))
