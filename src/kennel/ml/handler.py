"""SageMaker PyTorch serving contract: ``model_fn`` → ``input_fn`` → ``predict_fn`` → ``output_fn``.

The SageMaker toolkit calls ``input_fn(body, content_type)`` without the model, so ``input_fn`` only
parses: it returns a :class:`Request` holding encoded image bytes, URLs, uint8 pixel arrays or an
already-normalised float batch. Fetching URLs, decoding and preprocessing happen in ``predict_fn``,
which has the :class:`ServingModel` and therefore its preprocessing and options. That keeps the
handler free of module-level "current model" state, so one process can serve several models.

Request formats (``Content-Type``; parameters such as ``charset`` are ignored):

* ``image/jpeg``, ``image/png``, ``image/webp``, ``image/bmp``, ``image/gif``, ``image/tiff``,
  ``application/x-image``: one encoded image (the format is sniffed from the bytes).
* ``application/json``: ``{"url": ...}``, ``{"image": <base64>}`` (alias ``"b64"``), ``{"instances":
  [such objects]}`` or a JSON list of such objects; a top-level object may add ``"top_k": k``.
* ``application/x-npy``: uint8 pixels (HxWx3, 3xHxW, NxHxWx3, Nx3xHxW) or a float batch already
  normalised at the model's image size (3xSxS or Nx3xSxS).

Responses (``Accept``; missing, ``*/*`` and ``application/*`` mean JSON; q-values are honoured):

* ``application/json``: without ``top_k`` the raw scores (logits) as the seed endpoints returned
  them, a list of C numbers for one image or a list of such lists for a list request; with
  ``top_k`` > 0, ``[{"label", "index", "score"}]`` sorted by softmax probability (one list per image).
* ``application/x-npy``: the float32 logits, shape ``[C]`` for one image or ``[N, C]``; ``top_k``
  does not apply, the caller has every score.

``top_k`` precedence: an explicit JSON ``top_k`` beats ``top_k=`` in SageMaker CustomAttributes, which
beats ``KENNEL_DEFAULT_TOP_K``. The body is the more specific statement of intent: a client library
may add CustomAttributes to every call, while the JSON was written for this one request.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .errors import (
    BadRequestError,
    InferenceError,
    PayloadTooLargeError,
    UnsupportedAcceptError,
    UnsupportedContentTypeError,
)
from .export import EXPORT_DIR_ENV
from .images import decode_image
from .payloads import (
    JSON,
    NPY,
    EncodedImage,
    Request,
    UrlImage,
    media_type,
    parse_json,
    parse_npy,
    top_k_from_context,
)
from .runtimes import Predictor, load_predictor
from .transforms import Preprocess, eval_tensor, normalize, resize_and_center_crop
from .urlfetch import fetch_url

IMAGE_TYPES = (
    "image/jpeg",
    "image/png",
    "application/x-image",
    "image/webp",
    "image/bmp",
    "image/gif",
    "image/tiff",
)
CONTENT_TYPES = (*IMAGE_TYPES, JSON, NPY)
ACCEPT_TYPES = (JSON, NPY)

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker real-time endpoints cap payloads at 6 MB
_MAX_URL_FETCHERS = 8


@dataclass
class Prediction:
    logits: np.ndarray  # float32 [N, C]
    labels: list[str]
    single: bool
    top_k: int | None


@dataclass
class ServingModel:
    predictor: Predictor
    allow_private_urls: bool = False
    max_images: int = 64
    default_top_k: int = 0  # 0: raw scores, as the seed notebooks' endpoints returned
    url_timeout_s: float = 10.0
    url_max_bytes: int = 10 << 20
    max_pixels: int = 40_000_000

    @property
    def preprocess(self) -> Preprocess:
        return self.predictor.meta.preprocess

    @property
    def labels(self) -> list[str]:
        return list(self.predictor.meta.labels)

    @classmethod
    def from_env(cls, predictor: Predictor) -> ServingModel:
        return cls(
            predictor=predictor,
            allow_private_urls=_env_bool("KENNEL_ALLOW_PRIVATE_URLS", False),
            max_images=_env_int("KENNEL_MAX_IMAGES_PER_REQUEST", 64, minimum=1),
            default_top_k=_env_int("KENNEL_DEFAULT_TOP_K", 0, minimum=0),
        )


# --- the four SageMaker entry points -------------------------------------------------------------


def model_fn(model_dir: str, context: Any = None) -> ServingModel:
    # Read at call time so a container (or a test) can set the variables after importing the module.
    # "auto": the fastest runtime that gives eager torch's logits, measured on this instance at load.
    runtime = os.environ.get("KENNEL_RUNTIME", "auto").strip() or "auto"
    export_dir = os.environ.get(EXPORT_DIR_ENV, "").strip()
    export = Path(export_dir) if export_dir else None
    predictor = load_predictor(Path(model_dir), runtime, export_dir=export)
    # Reduced precision only behind the gate: proven on the artifact's own validation sample at load.
    precision = os.environ.get("KENNEL_PRECISION", "fp32").strip().lower() or "fp32"
    if precision != "fp32":
        from .precision import gated_predictor  # lazy: NNCF and the gate are only for this opt-in

        strict = _env_bool("KENNEL_PRECISION_STRICT", False)
        predictor = gated_predictor(Path(model_dir), precision, predictor, export_dir=export, strict=strict)
    return ServingModel.from_env(predictor)


def input_fn(request_body: bytes | str, request_content_type: str | None, context: Any = None) -> Request:
    kind = media_type(request_content_type)
    if kind not in CONTENT_TYPES:
        raise UnsupportedContentTypeError(request_content_type, CONTENT_TYPES)
    size = len(request_body.encode("utf-8")) if isinstance(request_body, str) else len(request_body)
    if size > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"the request body is {size} bytes; the limit is {MAX_BODY_BYTES} bytes. Send fewer or smaller "
            'images, or pass {"url": ...} so the server downloads them.'
        )
    if kind == JSON:
        request = parse_json(request_body)
    else:
        if isinstance(request_body, str):
            raise BadRequestError(f"a {kind} body must be raw bytes, not text")
        body = bytes(request_body)
        request = parse_npy(body) if kind == NPY else Request(items=[EncodedImage(body)])
    if request.top_k is None:
        request.top_k = top_k_from_context(context)
    return request


def predict_fn(data: Request, model: ServingModel, context: Any = None) -> Prediction:
    if data.count == 0:
        raise BadRequestError("the request holds no images")
    if data.count > model.max_images:
        raise BadRequestError(
            f"the request holds {data.count} images; the limit is {model.max_images} per request. "
            "Split it into several requests."
        )
    pp = model.preprocess
    if data.normalized is not None:
        batch = _check_normalized(data.normalized, pp)
    elif data.pixels is not None:
        # All images in an array share one size, so resizing works on the whole batch at once.
        batch = normalize(resize_and_center_crop(data.pixels, pp.resize_size, pp.image_size), pp)
    else:
        batch = _build_batch(data, model)
    logits = np.asarray(model.predictor.predict(batch), dtype=np.float32)
    top_k = data.top_k if data.top_k is not None else model.default_top_k
    return Prediction(logits=logits, labels=model.labels, single=data.single, top_k=top_k)


def output_fn(prediction: Prediction, accept: str | None, context: Any = None) -> tuple[bytes | str, str]:
    """Serialise for ``accept``: JSON text (str) or .npy bytes, plus the content type actually used."""
    kind = _choose_accept(accept)
    logits = prediction.logits
    if kind == NPY:
        buffer = io.BytesIO()
        np.save(buffer, logits[0] if prediction.single else logits, allow_pickle=False)
        return buffer.getvalue(), NPY
    if prediction.top_k:
        results: list[Any] = [_top_k_rows(row, prediction.labels, prediction.top_k) for row in logits]
    else:
        results = logits.tolist()
    return json.dumps(results[0] if prediction.single else results), JSON


def serve_request(
    model: ServingModel,
    body: bytes | str,
    content_type: str | None,
    accept: str | None = None,
    context: Any = None,
) -> tuple[bytes | str, str]:
    """The whole pipeline in one call, for servers that are not the SageMaker toolkit."""
    data = input_fn(body, content_type, context)
    return output_fn(predict_fn(data, model, context), accept, context)


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean; use true/false, 1/0, yes/no or on/off")


def _env_int(name: str, default: int, *, minimum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value}")
    return value


# --- batch building -------------------------------------------------------------------------------


def _check_normalized(batch: torch.Tensor, pp: Preprocess) -> torch.Tensor:
    size = pp.image_size
    if tuple(batch.shape[1:]) != (3, size, size):
        raise BadRequestError(
            f"float arrays must be normalised images of shape Nx3x{size}x{size} (or 3x{size}x{size}) for "
            f"this model; got {tuple(batch.shape)}. Send uint8 pixels to have the server preprocess them."
        )
    if not torch.isfinite(batch).all():
        raise BadRequestError("the float array contains NaN or infinite values")
    return batch


def _build_batch(data: Request, model: ServingModel) -> torch.Tensor:
    urls = [(i, item.url) for i, item in enumerate(data.items) if isinstance(item, UrlImage)]
    fetched = _fetch_urls(urls, model, data.single)
    tensors = []
    for i, item in enumerate(data.items):
        encoded = fetched[i] if isinstance(item, UrlImage) else item.data
        pixels = _labelled(lambda e=encoded: decode_image(e, max_pixels=model.max_pixels), i, data.single)
        tensors.append(eval_tensor(pixels, model.preprocess))
    return torch.stack(tensors)


def _fetch_urls(urls: list[tuple[int, str]], model: ServingModel, single: bool) -> dict[int, bytes]:
    def fetch(url: str) -> bytes:
        return fetch_url(
            url,
            max_bytes=model.url_max_bytes,
            timeout_s=model.url_timeout_s,
            allow_private=model.allow_private_urls,
        )

    if len(urls) <= 1:
        return {i: _labelled(lambda u=url: fetch(u), i, single) for i, url in urls}
    # Downloads wait on the network, not the CPU, so a few threads cut a multi-URL request's latency.
    with ThreadPoolExecutor(max_workers=min(_MAX_URL_FETCHERS, len(urls))) as pool:
        futures = {i: pool.submit(fetch, url) for i, url in urls}
        return {i: _labelled(future.result, i, single) for i, future in futures.items()}


_T = TypeVar("_T")


def _labelled(call: Callable[[], _T], index: int, single: bool) -> _T:
    """Run ``call``; in a multi-image request, say which image an error is about."""
    try:
        return call()
    except InferenceError as exc:
        if not single:
            exc.message = f"image {index}: {exc.message}"
            exc.args = (exc.message,)
        raise


# --- output ---------------------------------------------------------------------------------------


def _choose_accept(accept: str | None) -> str:
    if not accept or not accept.strip():
        return JSON
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and media:
            ranked.append((-quality, position, media.lower()))
    for _, _, media in sorted(ranked):
        if media in (JSON, "*/*", "application/*"):
            return JSON
        if media == NPY:
            return NPY
    raise UnsupportedAcceptError(accept, ACCEPT_TYPES)


def _top_k_rows(logits: np.ndarray, labels: list[str], k: int) -> list[dict[str, Any]]:
    scores = logits.astype(np.float64)
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")[: min(k, len(probs))]
    return [
        {"label": labels[i] if i < len(labels) else str(i), "index": int(i), "score": float(probs[i])}
        for i in order
    ]
