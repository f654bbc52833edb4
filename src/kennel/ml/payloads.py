"""Request bodies → a parsed :class:`Request` (no model needed: this is what ``input_fn`` does).

Image bytes, base64 and URLs stay encoded here; decoding and preprocessing need the model's settings
and happen in ``predict_fn``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import BadRequestError
from .images import MAX_SIDE

JSON = "application/json"
NPY = "application/x-npy"
_IMAGE_KEYS = ("url", "image", "b64")
_CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"


@dataclass(frozen=True)
class UrlImage:
    url: str


@dataclass(frozen=True)
class EncodedImage:
    data: bytes


ImageItem = UrlImage | EncodedImage


@dataclass
class Request:
    """What ``input_fn`` parsed; ``predict_fn`` turns it into a batch with the model's preprocessing."""

    items: list[ImageItem] = field(default_factory=list)
    # From .npy bodies; kept as one tensor so a huge N is refused before anything is split per image.
    pixels: torch.Tensor | None = None  # uint8 NCHW, preprocessed as one batch
    normalized: torch.Tensor | None = None  # float NCHW, used as-is after a shape check
    single: bool = True  # one image rather than a list: the response is then one result, not a list
    top_k: int | None = None

    @property
    def count(self) -> int:
        for tensor in (self.pixels, self.normalized):
            if tensor is not None:
                return int(tensor.shape[0])
        return len(self.items)


# --- parsing --------------------------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_json(body: bytes | str) -> Request:
    try:
        text = body if isinstance(body, str) else bytes(body).decode("utf-8-sig")
        payload = json.loads(text)
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"the JSON body is not valid UTF-8: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"the body is not valid JSON: {exc}") from exc

    top_k: int | None = None
    if isinstance(payload, list):
        entries, single = payload, False
    elif isinstance(payload, dict):
        if "top_k" in payload:
            top_k = _parse_top_k(payload["top_k"], 'the "top_k" field')
        if "instances" in payload:
            entries, single = payload["instances"], False
            if not isinstance(entries, list):
                raise BadRequestError(
                    '"instances" must be a JSON list of {"url": ...} or {"image": ...} objects'
                )
        else:
            entries, single = [payload], True
    else:
        raise BadRequestError(
            'the JSON body must be an object such as {"url": "https://..."} or {"image": "<base64>"}, '
            f"or a list of them; got a JSON {type(payload).__name__}"
        )
    if not entries:
        raise BadRequestError("the request lists no images")
    items = [_parse_entry(entry, None if single else i) for i, entry in enumerate(entries)]
    return Request(items=items, single=single, top_k=top_k)


def _parse_entry(entry: object, index: int | None) -> ImageItem:
    where = "the request" if index is None else f"image {index}"
    if not isinstance(entry, dict):
        raise BadRequestError(
            f'{where} must be an object like {{"url": "https://..."}} or {{"image": "<base64>"}}, '
            f"not a JSON {type(entry).__name__}"
        )
    present = [key for key in _IMAGE_KEYS if key in entry]
    if len(present) != 1:
        found = ", ".join(repr(k) for k in entry) or "no keys"
        problem = "gives more than one of" if present else "has none of"
        raise BadRequestError(f'{where} {problem} "url", "image", "b64" (it has {found}); give exactly one')
    key = present[0]
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError(f'{where}: "{key}" must be a non-empty string')
    if key == "url":
        return UrlImage(value.strip())
    return EncodedImage(_decode_base64(value, where, key))


_DATA_URL = re.compile(r"^data:[^,]*?(;base64)?,", re.IGNORECASE)


def _decode_base64(value: str, where: str, key: str) -> bytes:
    text = value.strip()
    match = _DATA_URL.match(text)
    if match:  # accept what a browser's FileReader.readAsDataURL produces
        if not match.group(1):
            raise BadRequestError(f'{where}: "{key}" is a data: URL that is not base64-encoded')
        text = text[match.end() :]
    text = "".join(text.split())
    altchars = b"-_" if ("-" in text or "_" in text) else None  # URL-safe alphabet
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError(f'{where}: "{key}" is not valid base64 ({exc})') from exc
    if not data:
        raise BadRequestError(f'{where}: "{key}" decodes to zero bytes')
    return data


def parse_npy(body: bytes) -> Request:
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadRequestError(
            f"the body is not a readable .npy array ({exc}); "
            "write it with numpy.save(..., allow_pickle=False)"
        ) from exc
    if not isinstance(array, np.ndarray):  # np.load returns an NpzFile for .npz archives
        raise BadRequestError("send a single .npy array, not an .npz archive")
    layouts = "HxWx3, 3xHxW, NxHxWx3 or Nx3xHxW"
    if array.dtype == np.uint8:
        if array.ndim not in (3, 4):
            raise BadRequestError(f"uint8 image arrays must be {layouts}; got shape {array.shape}")
        batch = array[None] if array.ndim == 3 else array
        if batch.shape[-1] == 3:
            batch = batch.transpose(0, 3, 1, 2)
        elif batch.shape[1] != 3:
            raise BadRequestError(f"uint8 image arrays must be {layouts} (RGB); got shape {array.shape}")
        _, _, height, width = batch.shape
        if height == 0 or width == 0 or height > MAX_SIDE or width > MAX_SIDE:
            raise BadRequestError(
                f"image arrays must be 1..{MAX_SIDE} pixels per side; got shape {array.shape}"
            )
        return Request(pixels=torch.from_numpy(np.ascontiguousarray(batch)), single=array.ndim == 3)
    if array.dtype.kind == "f":
        if array.ndim not in (3, 4):
            raise BadRequestError(
                f"float arrays must be a normalised 3xSxS image or Nx3xSxS batch; got shape {array.shape}"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        return Request(normalized=tensor if array.ndim == 4 else tensor[None], single=array.ndim == 3)
    raise BadRequestError(
        f"unsupported array dtype {array.dtype}: "
        "send uint8 pixels or a float32 batch that is already normalised"
    )


def _parse_top_k(value: object, source: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequestError(f"{source} must be a non-negative integer (0 means raw scores); got {value!r}")
    return value


def top_k_from_context(context: Any) -> int | None:
    raw = _custom_attributes(context)
    if not raw:
        return None
    for part in re.split(r"[;,]", raw):
        key, _, value = part.partition("=")
        if key.strip().lower() == "top_k":
            return _parse_top_k(value.strip(), "top_k in CustomAttributes")
    return None


def _custom_attributes(context: Any) -> str | None:
    if context is None:
        return None
    if isinstance(context, dict):
        value = context.get("custom_attributes")
        return value if isinstance(value, str) else None
    value = getattr(context, "custom_attributes", None)
    if isinstance(value, str):
        return value
    # A TorchServe context (what the SageMaker toolkit passes) exposes request headers instead.
    get_header = getattr(context, "get_request_header", None)
    if callable(get_header):
        for name in (_CUSTOM_ATTRIBUTES_HEADER, _CUSTOM_ATTRIBUTES_HEADER.lower()):
            try:
                header = get_header(0, name)
            except Exception:  # third-party context objects: a missing header may raise anything
                continue
            if isinstance(header, bytes | bytearray):
                header = header.decode("utf-8", "replace")
            if isinstance(header, str) and header:
                return header
    return None
