"""Export a Kennel model directory to ONNX, with a parity check against eager PyTorch.

The ONNX file is a derived artifact: a sidecar ``model.onnx.json`` records the checksum of the
``model.pth`` it was exported from, so runtimes can tell a stale export from a fresh one without
trusting file timestamps (which tar archives and copies do not preserve reliably).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .artifact import WEIGHTS_FILE, load_model_dir, read_meta, sha256_file

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
# Set by the endpoint manager: a directory shared (and writable) by every instance of one artifact version,
# so the export is made once per artifact rather than once per instance.
EXPORT_DIR_ENV = "KENNEL_EXPORT_DIR"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
SIDECAR_FORMAT = "kennel-onnx"
DEFAULT_OPSET = 17
# Batch 1 and a batch > 1: a wrongly exported batch dimension (traced as a constant) fails the latter.
_PARITY_BATCHES = (1, 3)


class ExportError(RuntimeError):
    """The model could not be exported to ONNX."""


class ExportParityError(ExportError):
    """The exported graph computes different logits from eager PyTorch."""

    def __init__(self, message: str, *, max_abs_diff: float, limit: float) -> None:
        super().__init__(message)
        self.max_abs_diff = max_abs_diff
        self.limit = limit


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_abs_diff: float | None  # None when the parity check was skipped
    seconds: float


def sidecar_path(onnx_path: Path) -> Path:
    return onnx_path.with_name(onnx_path.name + ".json")


def read_sidecar(onnx_path: Path) -> dict | None:
    try:
        data = json.loads(sidecar_path(onnx_path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == SIDECAR_FORMAT else None


def onnx_is_fresh(
    model_dir: Path, onnx_path: Path | None = None, *, weights_sha256: str | None = None
) -> bool:
    """True when ``onnx_path`` exists and its sidecar says it came from the current ``model.pth``."""
    model_dir = Path(model_dir)
    onnx_path = Path(onnx_path) if onnx_path is not None else model_dir / ONNX_FILE
    if not onnx_path.is_file():
        return False
    sidecar = read_sidecar(onnx_path)
    if sidecar is None:
        return False
    if weights_sha256 is None:
        weights_sha256 = sha256_file(model_dir / WEIGHTS_FILE)
    if sidecar.get("weights_sha256") != weights_sha256:
        return False
    # The input shape is baked into the graph, and it comes from the metadata rather than the weights.
    return sidecar.get("image_size") == read_meta(model_dir).preprocess.image_size


def _is_writable_dir(path: Path) -> bool:
    # os.access ignores read-only mounts on some filesystems; actually creating a file is the real test.
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".kennel-probe-"):
            pass
    except OSError:
        return False
    return True


def writable_cache_dir(model_dir: Path, name: str, key: str) -> Path:
    """``model_dir/name`` when the model directory is writable, else a per-``key`` folder in the temp dir."""
    preferred = Path(model_dir) / name
    if _is_writable_dir(preferred):
        return preferred
    fallback = Path(tempfile.gettempdir()) / f"kennel-{name}" / key[:20]
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


@contextlib.contextmanager
def _export_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock shared by every process exporting into ``directory``.

    flock, not a lock file's existence: the kernel drops it when a holder dies, so a killed instance
    never leaves the next one waiting forever. It works across sandboxes bound onto the same directory."""
    with open(directory / f".{ONNX_FILE}.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_onnx(
    model_dir: Path,
    *,
    weights_sha256: str | None = None,
    opset: int = DEFAULT_OPSET,
    atol: float = 1e-4,
    export_dir: Path | None = None,
) -> Path:
    """Return a fresh ONNX export of ``model_dir``, exporting only when it is missing or stale.

    Where it goes: ``export_dir`` when given (a shared per-artifact cache), else the model directory, else
    (a read-only model directory, a mounted ``/opt/ml/model`` say) the temp dir, keyed by the weights'
    checksum so different models never share one. A fresh ``model.onnx`` shipped inside the model
    directory always wins. Concurrent callers for one target serialise on a lock, so one exports and the
    others find its result; the file itself appears by atomic rename.
    """
    model_dir = Path(model_dir)
    weights_sha = weights_sha256 or sha256_file(model_dir / WEIGHTS_FILE)
    in_place = model_dir / ONNX_FILE
    if onnx_is_fresh(model_dir, in_place, weights_sha256=weights_sha):
        return in_place
    if export_dir is not None and _is_writable_dir(Path(export_dir)):
        target = Path(export_dir) / ONNX_FILE
    elif _is_writable_dir(model_dir):
        target = in_place
    else:
        target = writable_cache_dir(model_dir, "onnx", weights_sha) / ONNX_FILE
    if target != in_place and onnx_is_fresh(model_dir, target, weights_sha256=weights_sha):
        log.info("kennel: using the cached ONNX export %s", target)
        return target
    with _export_lock(target.parent):
        # Another process may have finished the export while this one waited for the lock.
        if onnx_is_fresh(model_dir, target, weights_sha256=weights_sha):
            log.info("kennel: using the cached ONNX export %s", target)
            return target
        result = export_onnx(model_dir, target, opset=opset, check=True, atol=atol)
    log.info(
        "kennel: exported the model to ONNX: %s in %.1f s (max |logit diff| vs eager %s)",
        target,
        result.seconds,
        "unchecked" if result.max_abs_diff is None else f"{result.max_abs_diff:.2g}",
    )
    return result.path


def _run_exported(onnx_path: Path, batch: np.ndarray) -> np.ndarray:
    """Run the exported graph with whichever exact-fp32 runtime is installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0], dtype=np.float32)
    try:
        import openvino as ov
    except ImportError as exc:
        raise ExportError(
            "neither onnxruntime nor openvino is installed, so the export cannot be checked; "
            "install one of them or pass check=False"
        ) from exc
    # f32 explicitly: the CPU plugin defaults to bf16 on CPUs that have it, which is not a parity check.
    compiled = ov.Core().compile_model(str(onnx_path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.asarray(compiled(batch)[0], dtype=np.float32).copy()


def check_parity(model: torch.nn.Module, onnx_path: Path, image_size: int, *, atol: float) -> float:
    """Compare eager logits with the exported graph's on random batches; return the max abs difference."""
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for n in _PARITY_BATCHES:
        batch = torch.randn(n, 3, image_size, image_size, generator=generator)
        with torch.inference_mode():
            expected = model(batch).float().numpy()
        got = _run_exported(onnx_path, batch.numpy())
        if got.shape != expected.shape:
            raise ExportParityError(
                f"exported graph returned shape {got.shape} for a batch of {n}; "
                f"eager returned {expected.shape}",
                max_abs_diff=float("inf"),
                limit=0.0,
            )
        diff = float(np.max(np.abs(got - expected)))
        # Logits of an untrained or sharply trained net can be large; fp32 error scales with them.
        limit = atol * max(1.0, float(np.max(np.abs(expected))))
        worst = max(worst, diff)
        if not diff <= limit:  # also catches NaN
            raise ExportParityError(
                f"ONNX export differs from eager PyTorch by {diff:.3g} on a batch of {n} "
                f"(allowed {limit:.3g} = {atol:g} × max(1, max|logit|))",
                max_abs_diff=diff,
                limit=limit,
            )
    return worst


def _torchscript_export(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    with warnings.catch_warnings():
        # torch marks the TorchScript exporter deprecated; it is still the route that needs no onnxscript,
        # and the message would otherwise reach every user who first loads an ONNX runtime.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def export_onnx(
    model_dir: Path,
    out_path: Path | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    atol: float = 1e-4,
) -> ExportResult:
    """Export ``model_dir`` to ONNX (dynamic batch, input ``input`` [N,3,S,S], output ``logits`` [N,C]).

    The file is written under a temporary name and only moved into place once it passed the parity
    check, so a failed export never leaves a broken ``model.onnx`` for a runtime to pick up.
    """
    started = time.perf_counter()
    model_dir = Path(model_dir)
    out_path = Path(out_path) if out_path is not None else model_dir / ONNX_FILE
    weights_sha = sha256_file(model_dir / WEIGHTS_FILE)
    model, meta = load_model_dir(model_dir, map_location="cpu")
    model = model.float().eval()
    size = meta.preprocess.image_size
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{uuid.uuid4().hex}.tmp")
    try:
        # Trace with a batch of 2 so nothing batch-1-specific (squeezes, broadcasts) gets baked in.
        example = torch.zeros(2, 3, size, size)
        try:
            _torchscript_export(model, example, tmp, opset)
        except Exception as exc:  # the exporter raises many unrelated types for unsupported ops
            raise ExportError(f"torch.onnx.export failed for {meta.model.backbone}: {exc}") from exc
        try:
            import onnx
        except ImportError:
            onnx = None
        if onnx is not None:
            try:
                onnx.checker.check_model(str(tmp))
            except onnx.checker.ValidationError as exc:
                raise ExportError(f"the exported graph is not valid ONNX: {exc}") from exc
        max_abs_diff = check_parity(model, tmp, size, atol=atol) if check else None
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "weights_sha256": weights_sha,
        "opset": opset,
        "image_size": size,
        "num_classes": meta.model.num_classes,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "max_abs_diff": max_abs_diff,
        "atol": atol if check else None,
        "torch_version": torch.__version__,
        "exporter": "torchscript",
        "created_at": time.time(),
    }
    _atomic_write_text(sidecar_path(out_path), json.dumps(sidecar, indent=2))
    return ExportResult(path=out_path, max_abs_diff=max_abs_diff, seconds=time.perf_counter() - started)
