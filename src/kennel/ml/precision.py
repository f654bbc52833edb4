"""The precision gate: reduced precision (bf16, int8) is served only after it is proven on the model.

``KENNEL_PRECISION=bf16|int8`` asks for it. At load the model server runs the artifact's validation
sample (:mod:`kennel.ml.calibration`) through the exact runtime it would serve otherwise and through
the reduced one, and serves the reduced one only when top-1 agreement is at least
:data:`MIN_AGREEMENT` and accuracy on the sample drops by at most :data:`MAX_DROP_POINTS` points.
Otherwise it logs the figures and serves the exact runtime, or, with ``KENNEL_PRECISION_STRICT=true``,
fails to load with the figures in the error (which the endpoint shows as its FailureReason).

bf16 is OpenVINO's CPU plugin with ``INFERENCE_PRECISION_HINT=bf16`` (a CPU without native bf16
compiles f32, and the gate says so instead of pretending). int8 is NNCF post-training static
quantization of the ONNX export, calibrated on the same sample; the quantized model is built once per
(weights, sample) and cached beside the ONNX export, so a second instance, a warm standby or a scale-out
loads it in a second. The verdict is cached there too (``serving.json``), keyed by the weights, the
sample and the CPU, so they do not rerun the gate either; the figures stay in every instance's log.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from . import calibration
from .artifact import META_FILE, ArtifactError
from .runtimes import OpenVinoPredictor, Predictor

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")
MIN_AGREEMENT = 0.99  # top-1 agreement with the exact runtime on the sample
MAX_DROP_POINTS = 0.5  # accuracy on the sample may fall by at most this many points
RECORD_FILE = "serving.json"


class PrecisionGateError(ArtifactError):
    """KENNEL_PRECISION_STRICT=true and the reduced precision did not pass: the figures say why."""


@dataclass(frozen=True)
class GateFigures:
    precision: str
    samples: int
    agreement: float  # fraction of the sample whose top-1 class is the same in both
    exact_accuracy: float
    reduced_accuracy: float
    max_logit_diff: float
    passed: bool
    reason: str

    @property
    def drop_points(self) -> float:
        return (self.exact_accuracy - self.reduced_accuracy) * 100.0

    def describe(self) -> str:
        if not self.samples:
            return f"{self.precision}: {self.reason}"
        return (
            f"{self.precision} on {self.samples} validation images: top-1 agreement "
            f"{self.agreement * 100:.1f} % (needs >= {MIN_AGREEMENT * 100:.0f} %), accuracy "
            f"{self.exact_accuracy * 100:.1f} % -> {self.reduced_accuracy * 100:.1f} % "
            f"(drop {self.drop_points:.1f} points, allowed {MAX_DROP_POINTS}), max |logit diff| "
            f"{self.max_logit_diff:.3g}: {self.reason}"
        )


def judge(
    precision: str,
    exact: np.ndarray,
    reduced: np.ndarray,
    targets: np.ndarray,
    *,
    min_agreement: float = MIN_AGREEMENT,
    max_drop_points: float = MAX_DROP_POINTS,
) -> GateFigures:
    """The gate's decision from the two runtimes' logits on the sample (pure: a table test covers it)."""
    count = int(targets.shape[0])
    if count == 0:
        return _refusal(precision, 0, "the artifact has no validation sample")
    if exact.shape != reduced.shape or exact.shape[0] != count:
        return replace(_refusal(precision, count, "the logits' shapes differ"), max_logit_diff=float("inf"))
    if not np.isfinite(reduced).all():
        return replace(_refusal(precision, count, "non-finite logits"), max_logit_diff=float("inf"))
    top_exact, top_reduced = exact.argmax(axis=1), reduced.argmax(axis=1)
    agreement = float((top_exact == top_reduced).mean())
    exact_acc = float((top_exact == targets).mean())
    reduced_acc = float((top_reduced == targets).mean())
    diff = float(np.max(np.abs(exact - reduced)))
    drop = (exact_acc - reduced_acc) * 100.0
    problems = []
    if agreement < min_agreement:
        problems.append("agreement too low")
    if drop > max_drop_points + 1e-9:
        problems.append("accuracy drops too much")
    reason = "; ".join(problems) or "passed"
    return GateFigures(precision, count, agreement, exact_acc, reduced_acc, diff, not problems, reason)


def _cpu_key() -> str:
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = " ".join(sorted(f for f in line.split() if "bf16" in f or "amx" in f or "vnni" in f))
                break
    except OSError:
        pass
    return f"{platform.machine()} {flags}".strip()


def _record_dir(model_dir: Path, export_dir: Path | None) -> Path:
    from .export import writable_cache_dir

    if export_dir is not None:
        return Path(export_dir)
    return writable_cache_dir(model_dir, "precision", model_dir.name)


def _logits(predictor: Predictor, batches: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(predictor.predict(b), dtype=np.float32) for b in batches])


def int8_model(model_dir: Path, onnx_path: Path, sample: calibration.Sample, batches: Sequence[np.ndarray],
               weights_sha256: str, directory: Path) -> Path:  # fmt: skip
    """The NNCF-quantized OpenVINO model for these weights and this sample, built once and cached."""
    from .export import _export_lock

    name = f"model-int8-{weights_sha256[:12]}-{sample.digest[:12]}"
    xml = directory / f"{name}.xml"
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        return xml
    directory.mkdir(parents=True, exist_ok=True)
    with _export_lock(directory):
        if xml.is_file() and xml.with_suffix(".bin").is_file():
            return xml
        import nncf  # lazy: only int8 needs it, and it takes seconds to import
        import openvino as ov

        started = time.perf_counter()
        model = ov.Core().read_model(str(onnx_path))
        items = [b[i : i + 1] for b in batches for i in range(b.shape[0])]
        quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items))
        tmp = directory / f".{name}.tmp.xml"
        ov.save_model(quantized, str(tmp), compress_to_fp16=False)
        tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))
        tmp.replace(xml)
        log.info("kennel: int8 model quantized with NNCF on %d images in %.1f s: %s", len(items),
                 time.perf_counter() - started, xml)  # fmt: skip
    return xml


def _reduced(model_dir: Path, precision: str, sample: calibration.Sample, batches: Sequence[np.ndarray],
             num_threads: int | None, export_dir: Path | None) -> Predictor:  # fmt: skip
    if precision == "bf16":
        predictor = OpenVinoPredictor(
            model_dir, f32=False, precision_hint="bf16", num_threads=num_threads, export_dir=export_dir
        )
        if predictor.precision != "bf16":
            raise RuntimeError(f"this CPU compiles {predictor.precision}, not bf16 (no native bf16)")
        return predictor
    from .artifact import WEIGHTS_FILE, sha256_file
    from .export import ensure_onnx

    weights_sha = sha256_file(model_dir / WEIGHTS_FILE)
    onnx_path = ensure_onnx(model_dir, weights_sha256=weights_sha, export_dir=export_dir)
    xml = int8_model(model_dir, onnx_path, sample, batches, weights_sha, _record_dir(model_dir, export_dir))
    predictor = OpenVinoPredictor(
        model_dir, f32=False, num_threads=num_threads, export_dir=export_dir, graph=xml
    )
    predictor.precision = "int8"
    return predictor


def reduced_predictor(model_dir: Path, precision: str, *, num_threads: int | None = None,
                      export_dir: Path | None = None) -> Predictor:  # fmt: skip
    """The ``precision`` runtime without the gate (``kennel evaluate`` measures it on a whole split).
    int8 still needs the artifact's sample: it is what the quantization calibrates on."""
    from .artifact import read_meta

    model_dir = Path(model_dir)
    if precision not in ("bf16", "int8"):
        raise ValueError(f"reduced precision must be bf16 or int8, not {precision!r}")
    meta = read_meta(model_dir)
    sample = calibration.read(model_dir, meta.preprocess, len(meta.classes))
    if precision == "int8" and (sample is None or not len(sample)):
        raise ArtifactError(
            f"int8 calibrates on {calibration.SAMPLE_FILE}, which this model has not: add one with "
            "`kennel package MODEL_DIR --data-dir DATA`"
        )
    batches = sample.batches(meta.preprocess) if sample is not None else []
    return _reduced(model_dir, precision, sample, batches, num_threads, export_dir)  # type: ignore[arg-type]


def _cached_verdict(path: Path, key: dict) -> GateFigures | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    entry = record.get("gates", {}).get(key["precision"]) if isinstance(record, dict) else None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    try:
        return GateFigures(**entry["figures"])
    except (TypeError, KeyError):
        return None


def _write_record(model_dir: Path, directory: Path, key: dict, figures: GateFigures, serving: str) -> None:
    """The verdict beside the cached export (shared by the artifact's instances) and, where the model
    directory is writable (local serving, ``kennel evaluate``), in ``kennel-model.json`` too."""
    entry = {"key": key, "figures": asdict(figures), "serving": serving, "at": time.time()}
    targets = [directory / RECORD_FILE]
    meta = model_dir / META_FILE
    if os.access(meta, os.W_OK) and os.access(model_dir, os.W_OK):
        targets.append(meta)
    for path in targets:
        try:
            record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
            if path == meta:
                record.setdefault("serving", {}).setdefault("gates", {})[figures.precision] = entry
            else:
                record.setdefault("gates", {})[figures.precision] = entry
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
            tmp.replace(path)
        except (OSError, ValueError) as exc:  # a record is for people; serving goes on without it
            log.warning("kennel: could not write the precision record to %s (%s)", path, exc)


def gated_predictor(model_dir: Path, precision: str, exact: Predictor, *, num_threads: int | None = None,
                    export_dir: Path | None = None, strict: bool = False,
                    candidate: Predictor | None = None) -> Predictor:  # fmt: skip
    """``exact`` or the ``precision`` runtime, whichever the gate allows (see the module docstring).
    ``candidate``: the reduced predictor when the caller has built it already (``kennel evaluate``)."""
    model_dir = Path(model_dir)
    if precision not in PRECISIONS:
        raise ValueError(f"KENNEL_PRECISION={precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return exact
    figures, reduced = _decide(model_dir, precision, exact, num_threads, export_dir, candidate)
    if figures.passed and reduced is not None:
        log.info("kennel: precision gate passed, serving %s: %s", reduced.runtime, figures.describe())
        return reduced
    message = f"kennel: precision gate refused {precision}: {figures.describe()}"
    if strict:
        raise PrecisionGateError(message.removeprefix("kennel: ") + " (KENNEL_PRECISION_STRICT=true)")
    log.warning("%s; serving %s (%s)", message, exact.runtime, exact.precision)
    return exact


def _refusal(precision: str, samples: int, reason: str) -> GateFigures:
    return GateFigures(precision, samples, 0.0, 0.0, 0.0, 0.0, False, reason)


def _decide(
    model_dir: Path,
    precision: str,
    exact: Predictor,
    num_threads: int | None,
    export_dir: Path | None,
    candidate: Predictor | None,
) -> tuple[GateFigures, Predictor | None]:
    """The gate's figures, and the reduced predictor when one was built."""
    meta = exact.meta
    sample = calibration.read(model_dir, meta.preprocess, len(meta.classes))
    if sample is None or not len(sample):
        return _refusal(precision, 0, f"the artifact has no {calibration.SAMPLE_FILE}"), None
    batches = sample.batches(meta.preprocess)
    key = {"precision": precision, "weights": meta.weights_sha256, "sample": sample.digest, "cpu": _cpu_key()}
    directory = _record_dir(model_dir, export_dir)
    cached = _cached_verdict(directory / RECORD_FILE, key)
    if cached is not None:
        log.info("kennel: precision gate verdict reused from %s", directory / RECORD_FILE)
        if not cached.passed:
            return cached, None  # refused before for these weights, sample and CPU: nothing to build
    try:
        reduced = candidate or _reduced(model_dir, precision, sample, batches, num_threads, export_dir)
    except Exception as exc:  # a runtime that cannot build the reduced model: say so, serve exact
        return _refusal(precision, len(sample), f"could not build it ({type(exc).__name__}: {exc})"), None
    if cached is not None:
        return cached, reduced
    figures = judge(precision, _logits(exact, batches), _logits(reduced, batches), sample.targets)
    _write_record(model_dir, directory, key, figures, reduced.runtime if figures.passed else exact.runtime)
    return figures, reduced


__all__ = ["MAX_DROP_POINTS", "MIN_AGREEMENT", "PRECISIONS", "GateFigures", "PrecisionGateError",
           "gated_predictor", "judge", "reduced_predictor"]  # fmt: skip
