"""The SageMaker inference-toolkit contract, as the model server runs it.

A model's ``code/`` script (``SAGEMAKER_PROGRAM``, default ``inference.py``, found in
``SAGEMAKER_SUBMIT_DIRECTORY``, default ``<model dir>/code``) may define ``model_fn``, ``input_fn``,
``predict_fn``, ``output_fn`` or ``transform_fn``; each may take a trailing ``context``. Missing
functions fall back to the PyTorch toolkit's defaults (TorchScript ``model.pt``; JSON, CSV and NPY
bodies to tensors and back). An artifact with no script at all but Kennel metadata is served by
Kennel's own handler. Errors carrying an HTTP ``status_code`` keep it; anything else is a 500 whose
body is the message and traceback, as the toolkit answers.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kennel.ml.archive import safe_extract_tar

JSON, CSV, NPY = "application/json", "text/csv", "application/x-npy"
_UTF8_TYPES = (JSON, CSV)
_CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
_ML_MODEL = "/opt/ml/model"


class HandlerLoadError(Exception):
    """The artifact's code cannot be loaded; the message says what to fix."""


class InvocationFailure(Exception):
    """A request the handler refused or failed, with the HTTP status the toolkit would answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class RequestContext:
    """What a handler's trailing ``context`` argument sees: the TorchServe-style accessors the toolkit's
    context offers, plus plain attributes (``custom_attributes``, ``model_dir``)."""

    model_dir: str
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    response_content_type: str | None = None
    system_properties: dict[str, Any] = field(default_factory=dict)

    @property
    def custom_attributes(self) -> str | None:
        return self.get_request_header(0, _CUSTOM_ATTRIBUTES)

    def get_request_header(self, idx: int, key: str) -> str | None:
        wanted = key.lower()
        return next((v for k, v in self.request_headers.items() if k.lower() == wanted), None)

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self.response_headers[key] = value

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.response_content_type = value

    def get_all_request_header(self, idx: int) -> dict[str, str]:
        return dict(self.request_headers)


@dataclass
class Response:
    body: bytes
    content_type: str
    headers: dict[str, str]


class LoadedHandler:
    """One loaded model and the four (or one) functions that serve it."""

    def __init__(self, model_dir: Path, env: Mapping[str, str], work_dir: Path | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.env = env
        self.default_accept = env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or JSON
        self.module, self.source = _load_module(self.model_dir, env, work_dir)
        get = (lambda name: getattr(self.module, name, None)) if self.module is not None else (lambda _: None)
        self.transform_fn: Callable | None = get("transform_fn")
        user = {name: get(name) for name in ("input_fn", "predict_fn", "output_fn")}
        if self.transform_fn is not None and any(user.values()):
            raise HandlerLoadError(
                "Cannot use transform_fn implementation in conjunction with input_fn, predict_fn, and/or "
                f"output_fn implementation ({self.source})"
            )
        self.input_fn: Callable = user["input_fn"] or default_input_fn
        self.predict_fn: Callable = user["predict_fn"] or default_predict_fn
        self.output_fn: Callable = user["output_fn"] or default_output_fn
        self.model_fn: Callable = get("model_fn") or default_model_fn
        context = RequestContext(str(self.model_dir), system_properties={"model_dir": str(self.model_dir)})
        self.model = _call(self.model_fn, [str(self.model_dir)], context)

    @property
    def is_builtin(self) -> bool:
        """Kennel's own handler serves this model (so its predictor can be batched)."""
        return type(self.model).__module__.endswith("kennel.ml.handler") and hasattr(self.model, "predictor")

    def invoke(
        self, body: bytes, content_type: str | None, accept: str | None, headers: dict[str, str]
    ) -> Response:
        context = RequestContext(str(self.model_dir), request_headers=headers)
        if not accept or accept == "*/*":
            accept = self.default_accept
        data: bytes | str = body
        if _media(content_type) in _UTF8_TYPES:
            try:
                data = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvocationFailure(400, f"the {content_type} body is not valid UTF-8: {exc}") from exc
        try:
            if self.transform_fn is not None:
                result = _call(self.transform_fn, [self.model, data, content_type, accept], context)
            else:
                parsed = _call(self.input_fn, [data, content_type], context)
                predicted = _call(self.predict_fn, [parsed, self.model], context)
                result = _call(self.output_fn, [predicted, accept], context)
        except InvocationFailure:
            raise
        except Exception as exc:
            raise _as_failure(exc) from exc
        if isinstance(result, tuple):
            result, response_type = result[0], result[1]
        else:
            response_type = context.response_content_type or accept
        return Response(_as_bytes(result), str(response_type), context.response_headers)


def _as_failure(exc: Exception) -> InvocationFailure:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status <= 599:
        return InvocationFailure(status, str(getattr(exc, "message", None) or exc))
    trace = traceback.format_exc()
    print(trace, file=sys.stderr, flush=True)  # the instance's log is where AWS users look first
    return InvocationFailure(500, f"{type(exc).__name__}: {exc}\n{trace}")


def _as_bytes(result: Any) -> bytes:
    if isinstance(result, bytes):
        return result
    if isinstance(result, bytearray | memoryview):
        return bytes(result)
    if isinstance(result, str):
        return result.encode("utf-8")
    if isinstance(result, list) and all(isinstance(part, bytes | str) for part in result):
        return b"".join(_as_bytes(part) for part in result)  # TorchServe-style one-item batch
    raise InvocationFailure(
        500, f"output_fn returned {type(result).__name__}; return bytes or str (or (body, content_type))"
    )


def _positional_count(fn: Callable) -> int | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _call(fn: Callable, args: list[Any], context: RequestContext) -> Any:
    """Pass ``context`` only to functions that declare a parameter for it, as the toolkit does."""
    count = _positional_count(fn)
    if count is not None and count > len(args):
        return fn(*args, context)
    return fn(*args)


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


# --- finding and importing the user's script ---------------------------------------------------------


def _submit_dir(model_dir: Path, env: Mapping[str, str], work_dir: Path | None) -> Path:
    raw = (env.get("SAGEMAKER_SUBMIT_DIRECTORY") or "").strip()
    default = model_dir / "code"
    if not raw:
        return default
    if raw.startswith("file://"):
        raw = raw[len("file://") :]
    if raw == _ML_MODEL or raw.startswith(_ML_MODEL + "/"):
        return model_dir / raw[len(_ML_MODEL) :].lstrip("/")  # the container path of the model dir
    if "://" in raw:
        if (default / (env.get("SAGEMAKER_PROGRAM") or "inference.py")).is_file():
            return default  # SDK-repacked artifacts carry the script under code/ as well
        raise HandlerLoadError(
            f"SAGEMAKER_SUBMIT_DIRECTORY={raw} cannot be fetched: Kennel reads source code from the model "
            "artifact's code/ directory or from a local path. Repack the script into model.tar.gz under "
            "code/, or point SAGEMAKER_SUBMIT_DIRECTORY at a local directory or sourcedir.tar.gz."
        )
    path = Path(raw)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        dest = Path(tempfile.mkdtemp(prefix="sourcedir-", dir=work_dir))
        safe_extract_tar(path, dest)
        return dest
    if not path.is_dir():
        raise HandlerLoadError(f"SAGEMAKER_SUBMIT_DIRECTORY={raw} is neither a directory nor a .tar.gz file")
    return path


def _load_module(model_dir: Path, env: Mapping[str, str], work_dir: Path | None) -> tuple[Any, str]:
    program = (env.get("SAGEMAKER_PROGRAM") or "").strip()
    code_dir = _submit_dir(model_dir, env, work_dir)
    script = code_dir / (program or "inference.py")
    if not script.is_file():
        if program:
            raise HandlerLoadError(f"SAGEMAKER_PROGRAM={program} was not found in {code_dir}")
        if (model_dir / "kennel-model.json").is_file():
            return importlib.import_module("kennel.ml.handler"), "kennel.ml.handler (built in)"
        return None, "the PyTorch toolkit's default handler"
    if (code_dir / "requirements.txt").is_file():
        print(
            f"{code_dir / 'requirements.txt'} is not installed: Kennel serves with the packages already "
            "in its environment (install missing ones there)",
            file=sys.stderr,
            flush=True,
        )
    sys.path.insert(0, str(code_dir))
    name = script.name[:-3] if script.name.endswith(".py") else script.name
    sys.modules.pop(name, None)  # a module imported earlier under this name must not stand in for the script
    try:
        return importlib.import_module(name), str(script)
    except Exception as exc:
        raise HandlerLoadError(f"importing {script} failed: {type(exc).__name__}: {exc}") from exc


# --- the PyTorch toolkit's defaults ----------------------------------------------------------------------


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_model_fn(model_dir: str) -> Any:
    import torch

    root = Path(model_dir)
    path = root / "model.pt"
    if not path.is_file():
        candidates = sorted(p for p in root.iterdir() if p.suffix in (".pt", ".pth")) if root.is_dir() else []
        if len(candidates) != 1:
            raise HandlerLoadError(
                f"no model_fn in the inference script and no single TorchScript model.pt in {model_dir} "
                f"(found {[p.name for p in candidates] or 'none'}): define model_fn(model_dir) in code/"
                "inference.py"
            )
        path = candidates[0]
    try:
        model = torch.jit.load(str(path), map_location=_device())
    except Exception as exc:
        raise HandlerLoadError(
            f"{path.name} is not a TorchScript model ({exc}); save it with torch.jit.save or define model_fn"
        ) from exc
    return model.eval()


class UnsupportedFormatError(Exception):
    status_code = 415

    def __init__(self, content_type: str | None, what: str) -> None:
        super().__init__(f"{what} {content_type!r} is not supported; use {JSON}, {CSV} or {NPY}")


def default_input_fn(input_data: bytes | str, content_type: str | None) -> Any:
    import torch

    kind = _media(content_type)
    if kind == JSON:
        array = np.array(json.loads(input_data), dtype=np.float32)
    elif kind == CSV:
        text = input_data if isinstance(input_data, str) else input_data.decode("utf-8")
        array = np.genfromtxt(io.StringIO(text), delimiter=",", dtype=np.float32)
    elif kind == NPY:
        raw = input_data.encode() if isinstance(input_data, str) else input_data
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    else:
        raise UnsupportedFormatError(content_type, "content type")
    return torch.as_tensor(array, dtype=torch.float32).to(_device())


def default_predict_fn(data: Any, model: Any) -> Any:
    import torch

    device = _device()
    if hasattr(model, "to"):
        model = model.to(device)
    if hasattr(data, "to"):
        data = data.to(device)
    if hasattr(model, "eval"):
        model.eval()
    with torch.no_grad():
        return model(data)


def default_output_fn(prediction: Any, accept: str) -> tuple[bytes | str, str]:
    if hasattr(prediction, "detach"):
        prediction = prediction.detach().cpu().numpy()
    array = np.asarray(prediction)
    kind = _media(accept)
    if kind == JSON:
        return json.dumps(array.tolist()), JSON
    if kind == CSV:
        buffer = io.StringIO()
        np.savetxt(buffer, np.atleast_2d(array), delimiter=",", fmt="%s")
        return buffer.getvalue(), CSV
    if kind == NPY:
        buffer_b = io.BytesIO()
        np.save(buffer_b, array, allow_pickle=False)
        return buffer_b.getvalue(), NPY
    raise UnsupportedFormatError(accept, "accept type")
