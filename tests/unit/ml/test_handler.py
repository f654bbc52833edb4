from __future__ import annotations

import base64
import io
import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

from kennel.ml.artifact import ArtifactMeta, write_model_dir
from kennel.ml.errors import (
    BadRequestError,
    ImageDecodeError,
    ImageTooLargeError,
    InferenceError,
    PayloadTooLargeError,
    UnsupportedAcceptError,
    UnsupportedContentTypeError,
    UrlNotAllowedError,
)
from kennel.ml.handler import (
    MAX_BODY_BYTES,
    Prediction,
    Request,
    ServingModel,
    input_fn,
    model_fn,
    output_fn,
    predict_fn,
    serve_request,
)
from kennel.ml.images import decode_image
from kennel.ml.models import Classifier, ModelConfig, build_model
from kennel.ml.transforms import Preprocess, eval_tensor

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torchvision.io.image")

NUM_CLASSES = 5
LABELS = [f"Breed {i}" for i in range(NUM_CLASSES)]
ENV_VARS = (
    "KENNEL_RUNTIME",
    "KENNEL_ALLOW_PRIVATE_URLS",
    "KENNEL_MAX_IMAGES_PER_REQUEST",
    "KENNEL_DEFAULT_TOP_K",
)


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def cpu_only() -> Iterator[None]:
    # On a GPU box the torch runtime would run under bfloat16 autocast; the exact-logit checks here
    # compare against a float32 CPU forward pass, so keep serving on the CPU.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "is_available", lambda: False)
        yield


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Classifier, ArtifactMeta]:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", num_classes=NUM_CLASSES, head_hidden=(16,))
    model = build_model(cfg)
    meta = ArtifactMeta(
        model=cfg,
        preprocess=Preprocess(image_size=64),
        classes=[f"00{i}.Breed_{i}" for i in range(NUM_CLASSES)],
        labels=LABELS,
    )
    model_dir = write_model_dir(tmp_path_factory.mktemp("artifact") / "model", model, meta)
    return model_dir, model.eval(), meta


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def serving(artifact: tuple[Path, Classifier, ArtifactMeta]) -> ServingModel:
    # Module-scoped (loading costs ~0.2 s); tests that need other settings call model_fn themselves.
    with pytest.MonkeyPatch.context() as patch:
        for name in ENV_VARS:
            patch.delenv(name, raising=False)
        return model_fn(str(artifact[0]))


def picture(seed: int = 0, height: int = 90, width: int = 120) -> np.ndarray:
    # Smooth blobs rather than noise: lossy codecs then stay close and every image gives distinct logits.
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BILINEAR)).copy()


def encode(array: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def direct_logits(model: Classifier, pixels: torch.Tensor, pp: Preprocess) -> np.ndarray:
    with torch.inference_mode():
        return model(eval_tensor(pixels, pp)[None])[0].numpy()


def run(
    serving: ServingModel,
    body: bytes | str,
    content_type: str,
    accept: str = "application/json",
    context=None,
):
    out, out_type = serve_request(serving, body, content_type, accept, context)
    if out_type == "application/json":
        return json.loads(out)
    return np.load(io.BytesIO(out), allow_pickle=False)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def png_with_header_size(width: int, height: int) -> bytes:
    data = bytearray(encode(np.zeros((1, 1, 3), np.uint8), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


class _ImageHandler(BaseHTTPRequestHandler):
    images: ClassVar[dict[str, bytes]] = {}

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.images.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")


@pytest.fixture(scope="module")
def image_server() -> Iterator[str]:
    _ImageHandler.images = {
        "/a.jpg": encode(picture(1), "JPEG", quality=95),
        "/b.png": encode(picture(2), "PNG"),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --- model_fn -------------------------------------------------------------------------------------


def test_model_fn_defaults(serving: ServingModel) -> None:
    assert serving.allow_private_urls is False
    assert serving.max_images == 64
    assert serving.default_top_k == 0
    assert serving.labels == LABELS
    assert serving.preprocess.image_size == 64
    # The default is the measured choice among the exact runtimes (eager torch only if none loads).
    assert serving.predictor.runtime in ("onnxruntime", "openvino-f32")


def test_model_fn_reads_env_at_call_time(artifact, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KENNEL_ALLOW_PRIVATE_URLS", "yes")
    clean_env.setenv("KENNEL_MAX_IMAGES_PER_REQUEST", "3")
    clean_env.setenv("KENNEL_DEFAULT_TOP_K", "2")
    clean_env.setenv("KENNEL_RUNTIME", "torch")
    serving = model_fn(str(artifact[0]))
    assert (serving.allow_private_urls, serving.max_images, serving.default_top_k) == (True, 3, 2)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KENNEL_ALLOW_PRIVATE_URLS", "maybe"),
        ("KENNEL_MAX_IMAGES_PER_REQUEST", "0"),
        ("KENNEL_DEFAULT_TOP_K", "x"),
    ],
)
def test_model_fn_rejects_bad_env(artifact, clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        model_fn(str(artifact[0]))


# --- round trips ----------------------------------------------------------------------------------


def test_jpeg_matches_direct_model_call(serving: ServingModel, artifact) -> None:
    _, model, meta = artifact
    data = encode(picture(), "JPEG", quality=95)
    scores = run(serving, data, "image/jpeg")
    assert isinstance(scores, list) and len(scores) == NUM_CLASSES
    expected = direct_logits(model, decode_image(data), meta.preprocess)
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)


def test_png_matches_direct_model_call(serving: ServingModel, artifact) -> None:
    _, model, meta = artifact
    pixels = picture(3)
    scores = run(serving, encode(pixels, "PNG"), "image/png")
    expected = direct_logits(model, torch.from_numpy(pixels).permute(2, 0, 1), meta.preprocess)
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("fmt", "kwargs"), [("WEBP", {"lossless": True}), ("BMP", {}), ("GIF", {})])
def test_x_image_any_pil_format(serving: ServingModel, artifact, fmt: str, kwargs: dict) -> None:
    _, model, meta = artifact
    data = encode(picture(4), fmt, **kwargs)
    scores = run(serving, data, "application/x-image")
    expected = direct_logits(model, decode_image(data), meta.preprocess)
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)


def test_jpeg_bytes_and_base64_json_identical(serving: ServingModel) -> None:
    data = encode(picture(5), "JPEG")
    raw = run(serving, data, "image/jpeg")
    assert run(serving, json.dumps({"image": b64(data)}), "application/json") == raw
    assert run(serving, json.dumps({"b64": b64(data)}).encode(), "application/json") == raw
    data_url = json.dumps({"image": "data:image/jpeg;base64," + b64(data)})
    assert run(serving, data_url, "Application/JSON; charset=utf-8") == raw
    urlsafe = base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert run(serving, json.dumps({"image": urlsafe}), "application/json") == raw


def test_json_list_and_instances(serving: ServingModel) -> None:
    images = [encode(picture(seed), "PNG") for seed in (6, 7)]
    singles = [run(serving, image, "image/png") for image in images]
    as_list = run(serving, json.dumps([{"image": b64(image)} for image in images]), "application/json")
    instances = run(
        serving, json.dumps({"instances": [{"image": b64(image)} for image in images]}), "application/json"
    )
    for result in (as_list, instances):
        assert len(result) == 2 and all(len(row) == NUM_CLASSES for row in result)
        np.testing.assert_allclose(result, singles, atol=1e-4, rtol=0)
    assert not np.allclose(singles[0], singles[1])
    one = run(serving, json.dumps({"instances": [{"image": b64(images[0])}]}), "application/json")
    assert len(one) == 1 and len(one[0]) == NUM_CLASSES  # a list request always answers with a list


def test_json_url(artifact, clean_env: pytest.MonkeyPatch, image_server: str) -> None:
    clean_env.setenv("KENNEL_ALLOW_PRIVATE_URLS", "1")
    serving = model_fn(str(artifact[0]))
    direct = run(serving, _ImageHandler.images["/a.jpg"], "image/jpeg")
    assert run(serving, json.dumps({"url": f"{image_server}/a.jpg"}), "application/json") == direct
    mixed = [
        {"url": f"{image_server}/a.jpg"},
        {"url": f"{image_server}/b.png"},
        {"url": f"{image_server}/a.jpg"},
    ]
    result = run(serving, json.dumps({"instances": mixed}), "application/json")
    np.testing.assert_allclose(result[0], direct, atol=1e-4, rtol=0)
    np.testing.assert_allclose(result[2], direct, atol=1e-4, rtol=0)
    with pytest.raises(InferenceError, match=r"image 1: .*HTTP 404"):
        run(
            serving,
            json.dumps([{"url": f"{image_server}/a.jpg"}, {"url": f"{image_server}/x"}]),
            "application/json",
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.jpg",
        "http://10.0.0.1/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/a.jpg",
        "http://localhost/a.jpg",
    ],
)
def test_private_urls_refused_by_default(serving: ServingModel, url: str) -> None:
    with pytest.raises(UrlNotAllowedError) as info:
        run(serving, json.dumps({"url": url}), "application/json")
    assert info.value.status_code == 403


def test_non_http_url_refused(serving: ServingModel) -> None:
    with pytest.raises(UrlNotAllowedError, match="only http"):
        run(serving, json.dumps({"url": "file:///etc/passwd"}), "application/json")


def test_npy_uint8_layouts(serving: ServingModel) -> None:
    pixels = picture(8)
    reference = run(serving, encode(pixels, "PNG"), "image/png")
    hwc = run(serving, npy(pixels), "application/x-npy")
    chw = run(serving, npy(pixels.transpose(2, 0, 1).copy()), "application/x-npy")
    np.testing.assert_allclose(hwc, reference, atol=1e-6, rtol=0)
    np.testing.assert_allclose(chw, reference, atol=1e-6, rtol=0)
    batch = np.stack([pixels, picture(9)])
    nhwc = run(serving, npy(batch), "application/x-npy")
    nchw = run(serving, npy(batch.transpose(0, 3, 1, 2).copy()), "application/x-npy")
    assert len(nhwc) == 2
    np.testing.assert_allclose(nhwc, nchw, atol=1e-6, rtol=0)
    np.testing.assert_allclose(nhwc[0], reference, atol=1e-4, rtol=0)


def test_npy_float_batch(serving: ServingModel, artifact) -> None:
    _, model, meta = artifact
    images = [torch.from_numpy(picture(seed)).permute(2, 0, 1) for seed in (10, 11)]
    batch = torch.stack([eval_tensor(image, meta.preprocess) for image in images]).numpy()
    result = run(serving, npy(batch), "application/x-npy")
    with torch.inference_mode():
        expected = model(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(result, expected, atol=1e-5, rtol=0)
    single = run(serving, npy(batch[0].astype(np.float64)), "application/x-npy")
    np.testing.assert_allclose(single, expected[0], atol=1e-5, rtol=0)


# --- top_k ----------------------------------------------------------------------------------------


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def test_top_k_from_json(serving: ServingModel) -> None:
    data = encode(picture(12), "JPEG")
    logits = np.array(run(serving, data, "image/jpeg"))
    top = run(serving, json.dumps({"image": b64(data), "top_k": 3}), "application/json")
    assert [set(entry) for entry in top] == [{"label", "index", "score"}] * 3
    order = np.argsort(-logits)[:3]
    assert [entry["index"] for entry in top] == order.tolist()
    assert [entry["label"] for entry in top] == [LABELS[i] for i in order]
    np.testing.assert_allclose([entry["score"] for entry in top], softmax(logits)[order], atol=1e-6)
    scores = [entry["score"] for entry in top]
    assert scores == sorted(scores, reverse=True)
    everything = run(serving, json.dumps({"image": b64(data), "top_k": 50}), "application/json")
    assert len(everything) == NUM_CLASSES
    assert sum(entry["score"] for entry in everything) == pytest.approx(1.0)
    raw = run(serving, json.dumps({"image": b64(data), "top_k": 0}), "application/json")
    assert raw == logits.tolist()


def test_top_k_for_a_list(serving: ServingModel) -> None:
    body = json.dumps({"instances": [{"image": b64(encode(picture(s), "PNG"))} for s in (1, 2)], "top_k": 2})
    result = run(serving, body, "application/json")
    assert len(result) == 2 and all(len(rows) == 2 for rows in result)


@pytest.mark.parametrize("attributes", ["top_k=2", "foo=bar;top_k=2", "top_k=2,foo=bar", " Top_K = 2 "])
def test_top_k_from_custom_attributes(serving: ServingModel, attributes: str) -> None:
    data = encode(picture(13), "JPEG")
    context = SimpleNamespace(custom_attributes=attributes)
    assert len(run(serving, data, "image/jpeg", context=context)) == 2


def test_json_top_k_beats_custom_attributes(serving: ServingModel) -> None:
    body = json.dumps({"image": b64(encode(picture(14), "JPEG")), "top_k": 3})
    assert (
        len(run(serving, body, "application/json", context=SimpleNamespace(custom_attributes="top_k=1"))) == 3
    )
    body_zero = json.dumps({"image": b64(encode(picture(14), "JPEG")), "top_k": 0})
    raw = run(serving, body_zero, "application/json", context=SimpleNamespace(custom_attributes="top_k=1"))
    assert len(raw) == NUM_CLASSES and all(isinstance(x, float) for x in raw)


def test_top_k_from_torchserve_style_context(serving: ServingModel) -> None:
    class TorchServeContext:
        def get_request_header(self, index: int, name: str) -> str | None:
            return "top_k=4" if name == "X-Amzn-SageMaker-Custom-Attributes" else None

    assert len(run(serving, encode(picture(15), "JPEG"), "image/jpeg", context=TorchServeContext())) == 4


def test_default_top_k_from_env(artifact, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KENNEL_DEFAULT_TOP_K", "1")
    serving = model_fn(str(artifact[0]))
    result = run(serving, encode(picture(16), "JPEG"), "image/jpeg")
    assert len(result) == 1 and result[0]["label"] in LABELS


# --- accept ---------------------------------------------------------------------------------------


def test_npy_accept(serving: ServingModel) -> None:
    data = encode(picture(17), "PNG")
    as_json = run(serving, data, "image/png")
    single = run(serving, data, "image/png", accept="application/x-npy")
    assert isinstance(single, np.ndarray) and single.shape == (NUM_CLASSES,) and single.dtype == np.float32
    np.testing.assert_allclose(single, as_json, atol=0, rtol=0)
    batch = run(
        serving, npy(np.stack([picture(1), picture(2)])), "application/x-npy", accept="application/x-npy"
    )
    assert batch.shape == (2, NUM_CLASSES)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("", "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("Application/JSON; charset=utf-8", "application/json"),
        ("application/x-npy", "application/x-npy"),
        ("text/html, application/x-npy;q=0.5, application/json;q=0.4", "application/x-npy"),
        ("application/json;q=0, application/x-npy", "application/x-npy"),
    ],
)
def test_accept_negotiation(serving: ServingModel, accept: str | None, expected: str) -> None:
    data = input_fn(encode(picture(18), "PNG"), "image/png")
    _, content_type = output_fn(predict_fn(data, serving), accept)
    assert content_type == expected


@pytest.mark.parametrize("accept", ["text/csv", "image/png", "application/json;q=0"])
def test_unsupported_accept(serving: ServingModel, accept: str) -> None:
    prediction = Prediction(
        logits=np.zeros((1, NUM_CLASSES), np.float32), labels=LABELS, single=True, top_k=None
    )
    with pytest.raises(UnsupportedAcceptError) as info:
        output_fn(prediction, accept)
    assert info.value.status_code == 406
    assert "application/json" in str(info.value)


# --- errors ---------------------------------------------------------------------------------------


def test_unsupported_content_type() -> None:
    with pytest.raises(UnsupportedContentTypeError) as info:
        input_fn(b"a,b\n1,2\n", "text/csv")
    assert info.value.status_code == 415
    for supported in (
        "image/jpeg",
        "image/png",
        "application/x-image",
        "application/json",
        "application/x-npy",
    ):
        assert supported in str(info.value)
    with pytest.raises(UnsupportedContentTypeError, match="no Content-Type"):
        input_fn(b"x", None)  # type: ignore[arg-type]


def test_undecodable_bytes(serving: ServingModel) -> None:
    with pytest.raises(ImageDecodeError) as info:
        run(serving, b"definitely not a picture", "image/jpeg")
    assert info.value.status_code == 400


def test_truncated_jpeg(serving: ServingModel) -> None:
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(noisy, "JPEG")
    with pytest.raises(ImageDecodeError, match="truncated"):
        run(serving, data[: len(data) // 2], "image/jpeg")


def test_decompression_bomb(serving: ServingModel) -> None:
    with pytest.raises(ImageTooLargeError):
        run(serving, png_with_header_size(60_000, 60_000), "image/png")
    with pytest.raises(ImageTooLargeError):
        run(serving, json.dumps({"image": b64(png_with_header_size(8000, 8000))}), "application/json")


def test_too_many_images(artifact, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KENNEL_MAX_IMAGES_PER_REQUEST", "2")
    serving = model_fn(str(artifact[0]))
    image = {"image": b64(encode(picture(), "PNG"))}
    with pytest.raises(BadRequestError, match="3 images; the limit is 2"):
        run(serving, json.dumps({"instances": [image] * 3}), "application/json")
    with pytest.raises(BadRequestError, match="limit is 2"):
        run(serving, npy(np.zeros((3, 8, 8, 3), np.uint8)), "application/x-npy")
    assert len(run(serving, json.dumps([image] * 2), "application/json")) == 2


def test_body_too_large() -> None:
    with pytest.raises(PayloadTooLargeError) as info:
        input_fn(b"\xff" * (MAX_BODY_BYTES + 1), "image/jpeg")
    assert info.value.status_code == 413


def test_float_npy_wrong_shape(serving: ServingModel) -> None:
    with pytest.raises(BadRequestError, match=r"Nx3x64x64"):
        run(serving, npy(np.zeros((2, 3, 32, 32), np.float32)), "application/x-npy")
    with pytest.raises(BadRequestError, match=r"Nx3x64x64"):
        run(serving, npy(np.zeros((2, 64, 64, 3), np.float32)), "application/x-npy")
    with pytest.raises(BadRequestError, match="3xSxS"):
        run(serving, npy(np.zeros((64, 64), np.float32)), "application/x-npy")
    bad = np.zeros((1, 3, 64, 64), np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(BadRequestError, match="NaN"):
        run(serving, npy(bad), "application/x-npy")


BAD_REQUESTS = [
    ("application/json", b"{not json"),
    ("application/json", b"\xff\xfe\x00"),
    ("application/json", json.dumps(42)),
    ("application/json", json.dumps({})),
    ("application/json", json.dumps({"picture": "abc"})),
    ("application/json", json.dumps({"url": "https://example.com/a.jpg", "image": "AAAA"})),
    ("application/json", json.dumps({"url": 5})),
    ("application/json", json.dumps({"image": ""})),
    ("application/json", json.dumps({"image": "not base64 at all!"})),
    ("application/json", json.dumps({"image": "data:image/png,rawtext"})),
    ("application/json", json.dumps({"image": "AAAA"})),  # valid base64, but three zero bytes
    ("application/json", json.dumps({"instances": {"image": "AAAA"}})),
    ("application/json", json.dumps({"instances": []})),
    ("application/json", json.dumps([])),
    ("application/json", json.dumps(["https://example.com/a.jpg"])),
    ("application/json", json.dumps({"image": "AAAA", "top_k": -1})),
    ("application/json", json.dumps({"image": "AAAA", "top_k": 2.5})),
    ("application/json", json.dumps({"image": "AAAA", "top_k": True})),
    ("application/x-npy", b"not an npy file"),
    ("application/x-npy", b""),
    ("application/x-npy", npy(np.zeros((4, 4, 3), np.int64))),
    ("application/x-npy", npy(np.zeros((4, 4, 4), np.uint8))),
    ("application/x-npy", npy(np.zeros((4, 4), np.uint8))),
    ("application/x-npy", npy(np.zeros((0, 4, 3), np.uint8))),
    ("application/x-npy", npy(np.zeros((2, 3, 64, 64), np.float32))[:-10]),
    ("image/jpeg", b""),
    ("image/png", "text body for a binary type"),
]


@pytest.mark.parametrize(("content_type", "body"), BAD_REQUESTS)
def test_bad_requests_get_client_errors(serving: ServingModel, content_type: str, body: bytes | str) -> None:
    with pytest.raises(InferenceError) as info:
        run(serving, body, content_type)
    assert 400 <= info.value.status_code < 500
    assert len(str(info.value)) > 10


def test_npy_pickle_and_npz_refused(serving: ServingModel) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(BadRequestError, match="allow_pickle"):
        run(serving, buffer.getvalue(), "application/x-npy")
    buffer = io.BytesIO()
    np.savez(buffer, a=np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(BadRequestError, match="npz"):
        run(serving, buffer.getvalue(), "application/x-npy")


def test_bad_custom_attribute_top_k() -> None:
    with pytest.raises(BadRequestError, match="CustomAttributes"):
        input_fn(b"x", "image/jpeg", SimpleNamespace(custom_attributes="top_k=lots"))


def test_multi_image_errors_name_the_image(serving: ServingModel) -> None:
    good = {"image": b64(encode(picture(), "PNG"))}
    with pytest.raises(ImageDecodeError, match=r"^image 1: "):
        run(serving, json.dumps([good, {"image": b64(b"garbage bytes")}]), "application/json")
    with pytest.raises(BadRequestError, match=r"^image 2 has none of"):
        run(serving, json.dumps([good, good, {"img": "x"}]), "application/json")


def test_input_fn_returns_a_lightweight_request() -> None:
    request = input_fn(json.dumps({"url": "https://example.com/dog.jpg", "top_k": 2}), "application/json")
    assert isinstance(request, Request)
    assert request.single and request.top_k == 2 and request.count == 1
    assert str(request.items[0]) == "UrlImage(url='https://example.com/dog.jpg')"  # not fetched yet


# --- the vendored code/ directory -----------------------------------------------------------------


def test_vendored_inference_script_is_self_contained(
    artifact, serving: ServingModel, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    model_dir = artifact[0]
    code_dir = model_dir / "code"
    image = tmp_path / "dog.jpg"
    image.write_bytes(encode(picture(19), "JPEG"))
    script = f"""
import importlib, json, pathlib, sys
inference = importlib.import_module("inference")
import kennel.ml.handler as handler
code_dir = pathlib.Path({str(code_dir)!r}).resolve()
assert pathlib.Path(handler.__file__).resolve().is_relative_to(code_dir), handler.__file__
leaked = [m for m in sys.modules if m.split(".")[0] == "kennel" and m not in ("kennel", "kennel.ml")
          and not m.startswith("kennel.ml.")]
assert not leaked, leaked
model = inference.model_fn({str(model_dir)!r})
data = inference.input_fn(pathlib.Path({str(image)!r}).read_bytes(), "image/jpeg")
body, content_type = inference.output_fn(inference.predict_fn(data, model), "application/json")
print(json.dumps({{"content_type": content_type, "scores": json.loads(body)}}))
"""
    env = {key: value for key, value in os.environ.items() if key not in ENV_VARS}
    env["PYTHONPATH"] = str(code_dir)
    env["CUDA_VISIBLE_DEVICES"] = ""  # same reason as cpu_only
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["content_type"] == "application/json"
    expected = run(serving, image.read_bytes(), "image/jpeg")
    np.testing.assert_allclose(result["scores"], expected, atol=1e-5, rtol=0)
