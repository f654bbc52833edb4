"""Inference runtimes behind one small interface: eager PyTorch, plus faster CPU runtimes.

Every predictor takes a normalised float32 NCHW batch (a torch tensor or a numpy array) and returns
float32 logits ``[N, classes]`` as a numpy array. Each has ``.runtime``, ``.precision``, ``.meta``,
``predict(batch)`` and ``warmup()``.

Runtimes:

``torch``         eager PyTorch (channels-last on CPU; bf16 autocast on CUDA).
``onnxruntime``   ONNX Runtime on ``model.onnx``; CUDA when the installed build has it, else CPU. fp32.
``openvino-f32``  OpenVINO CPU plugin forced to f32: matches eager within fp32 rounding.
``openvino``      OpenVINO's default precision for this CPU: bf16 on CPUs with AVX512_BF16/AMX, which
                  is the fastest CPU path but changes logits visibly. Opt-in only, never chosen by ``auto``.
``auto``          (the handler's default) the fastest *exact* runtime that loads here: ONNX Runtime fp32
                  and OpenVINO f32 are each loaded, checked against eager PyTorch on a random batch
                  (logits within 1e-4 × max(1, max|logit|)) and timed for a few interleaved rounds on
                  batches of the model's own input size; the faster serves. A runtime that is not
                  installed, fails to load or is not exact is skipped with a log line; with none left,
                  eager torch serves. The figures are logged (logger ``kennel.ml.runtimes``). On a
                  machine with CUDA, ``auto`` keeps eager torch (GPU serving is not measured yet).

The ONNX runtimes export ``model.onnx`` on first use (or when the sidecar says it is stale) through
:func:`kennel.ml.export.ensure_onnx`, into ``export_dir`` when given (the endpoint manager shares one per
artifact version between its instances). ONNX Runtime and OpenVINO are imported lazily so the torch
path keeps working in a container that has neither.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .artifact import WEIGHTS_FILE, ArtifactError, ArtifactMeta, load_model_dir, read_meta, sha256_file

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "onnxruntime", "openvino-f32", "openvino")
# The runtimes "auto" measures against each other; bf16 "openvino" is deliberately absent (not exact).
EXACT_RUNTIMES = ("onnxruntime", "openvino-f32")
EXACT_ATOL = 1e-4  # logits within this × max(1, max|logit|) of eager torch count as exact
# One measurement round: a single image (a lone request) and a small batch (what dynamic batching forms
# under load). Rounds alternate between runtimes so a burst of other load hits both alike.
MEASURE_BATCHES = (1, 4)
MEASURE_ROUNDS = 3
MEASURE_BUDGET_S = 3.0  # a large model stops measuring after the first round past this
_OV_CACHE = "ov-cache"


class Predictor(Protocol):
    runtime: str
    precision: str
    meta: ArtifactMeta

    def predict(self, batch: torch.Tensor | np.ndarray) -> np.ndarray: ...

    def warmup(self) -> None: ...


def default_num_threads() -> int:
    """Cores this process may run on (the affinity mask, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _dummy_batch(meta: ArtifactMeta, n: int = 1) -> np.ndarray:
    size = meta.preprocess.image_size
    return np.zeros((n, 3, size, size), dtype=np.float32)


class TorchPredictor:
    runtime = "torch"

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str | None = None,
        channels_last: bool = True,
        num_threads: int | None = None,
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if num_threads is not None and self.device.type == "cpu":
            # torch's intra-op pool is per process: this affects every other torch user in it too.
            torch.set_num_threads(num_threads)
        model, self.meta = load_model_dir(model_dir, map_location=self.device)
        self.channels_last = channels_last
        self.model = model.to(self.device).eval()
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.precision = "bf16-autocast" if self.device.type == "cuda" else "fp32"

    @torch.inference_mode()
    def predict(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        if isinstance(batch, np.ndarray):
            batch = torch.from_numpy(batch)
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = self.model(batch)
        else:
            logits = self.model(batch)
        return logits.float().cpu().numpy()

    def warmup(self) -> None:
        self.predict(_dummy_batch(self.meta))


class _OnnxGraphPredictor(ABC):
    """Shared by the runtimes that execute ``model.onnx``: export on demand and input checking."""

    runtime: str
    precision: str

    def __init__(self, model_dir: Path, *, num_threads: int | None, export_dir: Path | None = None) -> None:
        from .export import ensure_onnx  # lazy: export.py is only needed by the ONNX runtimes

        self.model_dir = Path(model_dir)
        self.meta = read_meta(self.model_dir)
        weights = self.model_dir / WEIGHTS_FILE
        if not weights.is_file():
            raise ArtifactError(f"{self.model_dir} has no {WEIGHTS_FILE}")
        self.weights_sha256 = sha256_file(weights)
        # Same guarantee as the torch path, even when a fresh model.onnx means model.pth is never loaded.
        if self.meta.weights_sha256 and self.meta.weights_sha256 != self.weights_sha256:
            raise ArtifactError(
                f"{WEIGHTS_FILE} does not match the checksum in its metadata: the artifact is corrupt"
            )
        self.num_threads = num_threads or default_num_threads()
        self.onnx_path = ensure_onnx(
            self.model_dir, weights_sha256=self.weights_sha256, export_dir=export_dir
        )

    def _as_input(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        if isinstance(batch, torch.Tensor):
            batch = batch.detach().to("cpu", torch.float32).numpy()
        array = np.ascontiguousarray(batch, dtype=np.float32)
        size = self.meta.preprocess.image_size
        if array.ndim != 4 or array.shape[1:] != (3, size, size) or array.shape[0] == 0:
            # The runtimes' own shape errors name graph nodes, not what the caller did wrong.
            raise ValueError(
                f"expected a float32 batch of shape [N>=1, 3, {size}, {size}], got {array.shape}"
            )
        return array

    def warmup(self) -> None:
        self.predict(_dummy_batch(self.meta))

    @abstractmethod
    def predict(self, batch: torch.Tensor | np.ndarray) -> np.ndarray: ...


class OnnxRuntimePredictor(_OnnxGraphPredictor):
    runtime = "onnxruntime"
    precision = "fp32"

    def __init__(
        self,
        model_dir: Path,
        *,
        num_threads: int | None = None,
        use_cuda: bool | None = None,
        export_dir: Path | None = None,
    ) -> None:
        import onnxruntime as ort

        super().__init__(model_dir, num_threads=num_threads, export_dir=export_dir)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # One convolution at a time, each spread over all cores: parallel branches barely exist in
        # these CNNs, and two pools would fight over the same cores.
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.num_threads
        options.inter_op_num_threads = 1
        # ORT's pool busy-waits between operators by default. Behind an endpoint that steals the cores the
        # request threads, the router and the gateway need to feed it (measured: full path ≈ 0.5× raw).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = ort.get_available_providers()
        if use_cuda is None:
            use_cuda = "CUDAExecutionProvider" in available and torch.cuda.is_available()
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
        )
        self.session = ort.InferenceSession(str(self.onnx_path), sess_options=options, providers=providers)
        self.providers = self.session.get_providers()
        self._input = self.session.get_inputs()[0].name
        self._output = self.session.get_outputs()[0].name

    def predict(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        # InferenceSession.run is thread-safe, so concurrent callers need no lock.
        out = self.session.run([self._output], {self._input: self._as_input(batch)})[0]
        return np.asarray(out, dtype=np.float32)


class OpenVinoPredictor(_OnnxGraphPredictor):
    """OpenVINO CPU plugin with the LATENCY hint (all cores on one request, lowest time per batch).

    ``f32=True`` pins ``INFERENCE_PRECISION_HINT`` to f32; otherwise the plugin's default applies, which
    is bf16 on CPUs with native bf16 and f32 elsewhere (``.precision`` reports what was compiled).
    Compiled blobs are cached in ``model_dir/ov-cache`` (or the temp dir when the model directory is
    read-only), so a second load skips most of the compilation.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        f32: bool = True,
        num_threads: int | None = None,
        device: str = "CPU",
        cache_dir: Path | None = None,
        export_dir: Path | None = None,
        precision_hint: str | None = None,
        graph: Path | None = None,
    ) -> None:
        import openvino as ov

        from .export import writable_cache_dir

        super().__init__(model_dir, num_threads=num_threads, export_dir=export_dir)
        self.runtime = "openvino-f32" if f32 else "openvino"
        if precision_hint is not None:  # the precision gate's candidates (kennel.ml.precision)
            f32 = False
            self.runtime = f"openvino-{precision_hint}"
        if graph is not None:
            self.runtime = "openvino-int8"
        self.device = device
        if cache_dir is None:
            cache_dir = writable_cache_dir(self.model_dir, _OV_CACHE, self.weights_sha256)
        self.cache_dir = Path(cache_dir)
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": self.num_threads,
            "CACHE_DIR": str(self.cache_dir),
        }
        if f32:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        elif precision_hint is not None:
            config["INFERENCE_PRECISION_HINT"] = precision_hint
        self.core = ov.Core()
        # The export has a dynamic batch dimension; compiling from the path (not a read_model result)
        # lets OpenVINO key its cache on the file and skip parsing on a cache hit.
        self.compiled = self.core.compile_model(str(graph or self.onnx_path), device, config)
        self.precision = _ov_type_name(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self._local = threading.local()

    def _request(self) -> Any:
        # An InferRequest is not thread-safe; one per thread keeps concurrent callers apart.
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return request

    def predict(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        request = self._request()
        request.infer({0: self._as_input(batch)})
        # The output tensor's memory belongs to the request and is overwritten by the next call.
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)


def _ov_type_name(value: Any) -> str:
    name = str(getattr(value, "type_name", None) or value)
    return {"f32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16", "f16": "fp16"}.get(
        name, name
    )


def runtime_available(runtime: str) -> bool:
    """Whether ``runtime``'s Python package is importable (without importing it)."""
    if runtime == "torch":
        return True
    if runtime == "onnxruntime":
        return importlib.util.find_spec("onnxruntime") is not None
    if runtime in ("openvino", "openvino-f32"):
        return importlib.util.find_spec("openvino") is not None
    return False


def _load(
    model_dir: Path, runtime: str, num_threads: int | None, export_dir: Path | None = None
) -> Predictor:
    if runtime == "torch":
        return TorchPredictor(model_dir, num_threads=num_threads)
    if runtime == "onnxruntime":
        return OnnxRuntimePredictor(model_dir, num_threads=num_threads, export_dir=export_dir)
    if runtime in ("openvino", "openvino-f32"):
        return OpenVinoPredictor(
            model_dir, f32=runtime == "openvino-f32", num_threads=num_threads, export_dir=export_dir
        )
    raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")


def load_predictor(
    model_dir: Path,
    runtime: str = "torch",
    *,
    num_threads: int | None = None,
    export_dir: Path | None = None,
) -> Predictor:
    """Load ``model_dir`` for inference with ``runtime`` (one of :data:`RUNTIMES`).

    ``auto`` measures the exact runtimes and serves the fastest (see :func:`choose_predictor`); it falls
    through to eager torch when none loads, so serving never breaks for want of a faster runtime. An
    explicitly named runtime raises instead.
    """
    model_dir = Path(model_dir)
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime != "auto":
        return _load(model_dir, runtime, num_threads, export_dir)
    if torch.cuda.is_available():
        log.info(
            "kennel: runtime auto on a CUDA machine: serving eager torch (GPU runtimes are not measured)"
        )
        return _load(model_dir, "torch", num_threads, export_dir)
    return choose_predictor(model_dir, num_threads=num_threads, export_dir=export_dir)


Loader = Callable[[Path, str, int | None, Path | None], Predictor]
RoundTimer = Callable[[Predictor, Sequence[np.ndarray]], float]


def time_round(predictor: Predictor, batches: Sequence[np.ndarray]) -> float:
    """Seconds ``predictor`` takes for one pass over ``batches``."""
    started = time.perf_counter()
    for batch in batches:
        predictor.predict(batch)
    return time.perf_counter() - started


def _parity(predictor: Predictor, batch: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    got = np.asarray(predictor.predict(batch), dtype=np.float32)
    if got.shape != expected.shape:
        return float("inf"), 0.0
    limit = EXACT_ATOL * max(1.0, float(np.max(np.abs(expected))))
    diff = float(np.max(np.abs(got - expected)))
    return (diff if diff == diff else float("inf")), limit  # NaN counts as not exact


def choose_predictor(
    model_dir: Path,
    *,
    num_threads: int | None = None,
    export_dir: Path | None = None,
    candidates: Sequence[str] = EXACT_RUNTIMES,
    load: Loader = _load,
    timer: RoundTimer = time_round,
    rounds: int = MEASURE_ROUNDS,
    budget_s: float = MEASURE_BUDGET_S,
) -> Predictor:
    """The fastest exact runtime for ``model_dir`` on this machine, measured now; eager torch if none loads.

    Each candidate is loaded, checked against eager torch (the definition of the right answer) and timed
    on :data:`MEASURE_BATCHES` at the model's own image size. Every step that drops a candidate, and the
    figures that decide, are logged, so an instance's log says what it serves and why.
    """
    model_dir = Path(model_dir)
    loaded: dict[str, Predictor] = {}
    for name in candidates:
        if not runtime_available(name):
            log.info("kennel: runtime %s is not installed here; skipping it", name)
            continue
        try:
            loaded[name] = load(model_dir, name, num_threads, export_dir)
        except ArtifactError:
            raise  # a broken artifact fails every runtime the same way
        except Exception as exc:  # any failure of an optional runtime must leave the next one, then torch
            log.warning(
                "kennel: runtime %s could not load %s (%s: %s); trying the next one",
                name,
                model_dir,
                type(exc).__name__,
                exc,
            )
    reference = load(model_dir, "torch", num_threads, export_dir)
    if not loaded:
        log.warning("kennel: no exact faster runtime loaded; serving eager torch")
        return reference
    size = reference.meta.preprocess.image_size
    rng = np.random.default_rng(0)
    probe = rng.standard_normal((2, 3, size, size)).astype(np.float32)
    expected = np.asarray(reference.predict(probe), dtype=np.float32)
    diffs: dict[str, float] = {}
    for name in list(loaded):
        try:
            diff, limit = _parity(loaded[name], probe, expected)
        except Exception as exc:  # a runtime that loads but cannot run is no better than one that fails
            diff, limit = float("inf"), 0.0
            log.warning("kennel: runtime %s failed on a test batch (%s: %s)", name, type(exc).__name__, exc)
        if diff <= limit:
            diffs[name] = diff
        else:
            log.warning(
                "kennel: runtime %s is not exact for this model (max |logit diff| vs eager %.3g > %.3g); "
                "skipping it",
                name,
                diff,
                limit,
            )
            del loaded[name]
    if not loaded:
        log.warning("kennel: no exact faster runtime passed the check; serving eager torch")
        return reference
    del reference  # the eager copy's weights need not stay resident next to the chosen runtime's
    batches = [rng.standard_normal((n, 3, size, size)).astype(np.float32) for n in MEASURE_BATCHES]
    for predictor in loaded.values():
        predictor.predict(batches[0])  # the first call allocates and tunes; it is not what serving costs
    timings: dict[str, list[float]] = {name: [] for name in loaded}
    started = time.perf_counter()
    for _ in range(max(1, rounds)):
        for name, predictor in loaded.items():
            timings[name].append(timer(predictor, batches))
        if time.perf_counter() - started > budget_s:
            break
    # The least disturbed round is the fairest figure on a machine other work shares.
    best = {name: min(values) for name, values in timings.items()}
    chosen = min(best, key=lambda name: best[name])
    figures = ", ".join(
        f"{name} {best[name] * 1000:.1f} ms (max |logit diff| vs eager {diffs[name]:.2g})" for name in best
    )
    shape = "+".join(str(n) for n in MEASURE_BATCHES)
    log.info(
        "kennel: runtime auto measured %s per round of batches %s at %d px (best of %d): serving %s (%s)",
        figures,
        shape,
        size,
        len(timings[chosen]),
        chosen,
        loaded[chosen].precision,
    )
    return loaded[chosen]


__all__ = [
    "EXACT_RUNTIMES",
    "RUNTIMES",
    "OnnxRuntimePredictor",
    "OpenVinoPredictor",
    "Predictor",
    "TorchPredictor",
    "choose_predictor",
    "default_num_threads",
    "load_predictor",
    "runtime_available",
]
