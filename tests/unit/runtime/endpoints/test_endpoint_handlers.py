"""The inference-toolkit contract as the model server applies it, on small scripts written here."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from kennel.runtime.endpoints.handlers import HandlerLoadError, InvocationFailure, LoadedHandler
from kennel.runtime.endpoints.server import build_server

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")


def _model_dir(tmp_path: Path, script: str | None, name: str = "inference.py") -> Path:
    model_dir = tmp_path / "model"
    (model_dir / "code").mkdir(parents=True)
    if script is not None:
        (model_dir / "code" / name).write_text(textwrap.dedent(script))
    return model_dir


def test_the_four_functions_run_in_order_with_context_where_declared(tmp_path: Path) -> None:
    model_dir = _model_dir(
        tmp_path,
        """
        import json
        def model_fn(model_dir):
            return {"scale": 2}
        def input_fn(body, content_type, context):
            return {"x": json.loads(body)["x"], "attrs": context.custom_attributes}
        def predict_fn(data, model):
            return {"y": data["x"] * model["scale"], "attrs": data["attrs"]}
        def output_fn(prediction, accept):
            return json.dumps(prediction), "application/vnd.test+json"
        """,
    )
    handler = LoadedHandler(model_dir, {})
    headers = {"x-amzn-sagemaker-custom-attributes": "top_k=2"}
    response = handler.invoke(b'{"x": 21}', "application/json", None, headers)
    assert json.loads(response.body) == {"y": 42, "attrs": "top_k=2"}
    assert response.content_type == "application/vnd.test+json"
    assert not handler.is_builtin


def test_transform_fn_sets_response_headers_and_cannot_mix_with_the_others(tmp_path: Path) -> None:
    echo = _model_dir(
        tmp_path,
        """
        def model_fn(model_dir):
            return None
        def transform_fn(model, body, content_type, accept, context):
            context.set_response_header(0, "X-Amzn-SageMaker-Custom-Attributes", "seen=" + content_type)
            return body.upper()
        """,
    )
    handler = LoadedHandler(echo, {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/plain"})
    response = handler.invoke(b"abc", "text/x-raw", "*/*", {})
    assert (response.body, response.content_type) == (b"ABC", "text/plain")
    assert response.headers == {"X-Amzn-SageMaker-Custom-Attributes": "seen=text/x-raw"}
    (echo / "code" / "inference.py").write_text(
        "def transform_fn(m, b, c, a): pass\ndef input_fn(b, c): pass\n"
    )
    with pytest.raises(HandlerLoadError, match="Cannot use transform_fn implementation in conjunction"):
        LoadedHandler(echo, {})


def test_errors_keep_their_status_or_become_500_with_a_traceback(tmp_path: Path) -> None:
    model_dir = _model_dir(
        tmp_path,
        """
        class Refused(Exception):
            status_code = 422
        def model_fn(model_dir):
            return None
        def transform_fn(model, body, content_type, accept):
            if body == b"refuse":
                raise Refused("not that one")
            raise KeyError("weights")
        """,
    )
    handler = LoadedHandler(model_dir, {})
    with pytest.raises(InvocationFailure) as refused:
        handler.invoke(b"refuse", "text/plain", None, {})
    assert (refused.value.status, refused.value.message) == (422, "not that one")
    with pytest.raises(InvocationFailure) as crashed:
        handler.invoke(b"other", "text/plain", None, {})
    assert crashed.value.status == 500
    assert "KeyError: 'weights'" in crashed.value.message and "Traceback" in crashed.value.message


def test_pytorch_toolkit_defaults_serve_a_torchscript_model(tmp_path: Path) -> None:
    model_dir = _model_dir(tmp_path, None)
    linear = torch.nn.Linear(3, 2)
    torch.jit.save(torch.jit.script(linear), str(model_dir / "model.pt"))
    handler = LoadedHandler(model_dir, {})
    expected = linear(torch.tensor([[1.0, 2.0, 3.0]])).detach().numpy()
    as_json = handler.invoke(b"[[1, 2, 3]]", "application/json", "application/json", {})
    assert np.allclose(json.loads(as_json.body), expected, atol=1e-6)
    as_csv = handler.invoke(b"1,2,3", "text/csv", "text/csv", {})
    assert np.allclose(np.loadtxt(io.StringIO(as_csv.body.decode()), delimiter=","), expected[0], atol=1e-5)
    buffer = io.BytesIO()
    np.save(buffer, np.array([[1.0, 2.0, 3.0]], dtype=np.float32))
    as_npy = handler.invoke(buffer.getvalue(), "application/x-npy", "application/x-npy", {})
    assert np.allclose(np.load(io.BytesIO(as_npy.body)), expected, atol=1e-6)
    with pytest.raises(InvocationFailure) as unsupported:
        handler.invoke(b"[[1, 2, 3]]", "application/json", "image/png", {})
    assert unsupported.value.status == 415


def test_where_the_script_comes_from(tmp_path: Path) -> None:
    model_dir = _model_dir(tmp_path, "def model_fn(d):\n    return 'custom'\n", name="serve.py")
    env = {"SAGEMAKER_PROGRAM": "serve.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
    assert LoadedHandler(model_dir, env).model == "custom"  # the container path maps to the model dir
    s3 = {**env, "SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/sourcedir.tar.gz"}
    assert LoadedHandler(model_dir, s3).model == "custom"  # SDK-repacked: the script is under code/ too
    with pytest.raises(HandlerLoadError, match="cannot be fetched"):
        LoadedHandler(model_dir, {**s3, "SAGEMAKER_PROGRAM": "absent.py"})
    with pytest.raises(HandlerLoadError, match=r"SAGEMAKER_PROGRAM=missing\.py was not found"):
        LoadedHandler(model_dir, {"SAGEMAKER_PROGRAM": "missing.py"})
    with pytest.raises(HandlerLoadError, match="no model_fn in the inference script"):
        LoadedHandler(_model_dir(tmp_path / "empty", None), {})


def test_the_builtin_handler_serves_kennel_artifacts_with_batching(tmp_path: Path) -> None:
    from kennel.ml.artifact import ArtifactMeta, write_model_dir
    from kennel.ml.models import ModelConfig, build_model
    from kennel.ml.transforms import Preprocess

    cfg = ModelConfig(backbone="resnet18", num_classes=3, head_hidden=(8,))
    meta = ArtifactMeta(
        model=cfg, preprocess=Preprocess(image_size=32), classes=["a", "b", "c"], labels=["A", "B", "C"]
    )
    model_dir = write_model_dir(tmp_path / "kennel", build_model(cfg), meta, with_code=False)
    server = build_server(model_dir, {"KENNEL_MAX_BATCH_SIZE": "4", "KENNEL_RUNTIME": "torch"})
    assert server.handler.is_builtin and server.batcher is not None and server.batcher.max_batch_size == 4
    pixels = io.BytesIO()
    np.save(pixels, np.zeros((2, 40, 40, 3), dtype=np.uint8))
    status, body, content_type, extra = server.run(
        pixels.getvalue(),
        {"content-type": "application/x-npy", "x-amzn-sagemaker-custom-attributes": "top_k=2"},
    )
    assert (status, content_type) == (200, "application/json")
    rows = json.loads(body)
    assert len(rows) == 2 and [len(r) for r in rows] == [2, 2] and rows[0][0]["label"] in ("A", "B", "C")
    assert extra["x-kennel-batch-size"] == "2" and int(extra["x-kennel-handler-us"]) > 0
    status, body, _, _ = server.run(b"not an image", {"content-type": "image/jpeg"})
    assert status == 400
    server.batcher.close()
