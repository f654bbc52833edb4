from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from kennel.ml.errors import ImageDecodeError, ImageTooLargeError, InferenceError, PayloadTooLargeError
from kennel.ml.images import MAX_SIDE, decode_image

# torchvision 0.29 deprecated its codecs (decode_image falls back to PIL once they are removed).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:torchvision.io.image")


def gradient(height: int = 48, width: int = 64) -> np.ndarray:
    # Smooth content keeps lossy codecs close to the source, so comparisons can use tight tolerances.
    y = np.linspace(0, 255, height)[:, None]
    x = np.linspace(0, 255, width)[None, :]
    return np.stack(
        [np.broadcast_to(y, (height, width)), np.broadcast_to(x, (height, width)), (y + x) / 2], -1
    ).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_with_header_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR claims ``width`` x ``height`` (CRC fixed up so parsers trust it)."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    # Signature (8) + chunk length (4) + b"IHDR" (4), then width and height as big-endian uint32.
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def as_chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def test_png_is_lossless_and_uint8_chw() -> None:
    source = gradient()
    out = decode_image(encode(Image.fromarray(source), "PNG"))
    assert out.dtype == torch.uint8
    assert out.shape == (3, 48, 64)
    assert out.is_contiguous()
    assert torch.equal(out, as_chw(source))


def test_jpeg_matches_pil_decode() -> None:
    data = encode(Image.fromarray(gradient()), "JPEG", quality=95)
    out = decode_image(data)
    reference = as_chw(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    assert out.shape == (3, 48, 64)
    assert (out.int() - reference.int()).abs().float().mean() < 2.0


@pytest.mark.parametrize(
    ("fmt", "kwargs"),
    [("WEBP", {"lossless": True}), ("BMP", {}), ("TIFF", {}), ("PPM", {})],
)
def test_pil_formats_lossless(fmt: str, kwargs: dict) -> None:
    source = gradient()
    out = decode_image(encode(Image.fromarray(source), fmt, **kwargs))
    assert torch.equal(out, as_chw(source))


def test_gif_gives_first_frame() -> None:
    frames = [Image.new("RGB", (20, 10), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    out = decode_image(buffer.getvalue())
    assert out.shape == (3, 10, 20)
    assert out[:, 0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "1"])
def test_png_modes_become_rgb(mode: str) -> None:
    source = Image.fromarray(gradient()).convert(mode)
    out = decode_image(encode(source, "PNG"))
    expected = as_chw(np.asarray(source.convert("RGB")))
    assert out.shape == (3, 48, 64)
    assert torch.equal(out, expected)


def test_palette_with_transparency_via_pil_path() -> None:
    image = Image.new("P", (8, 4))
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    image.paste(1, (0, 0, 4, 4))
    data = encode(image, "GIF", transparency=0)
    out = decode_image(data)
    assert out.shape == (3, 4, 8)
    assert out[:, 0, 0].tolist() == [10, 200, 30]


def test_sixteen_bit_png_keeps_high_byte() -> None:
    values = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    out = decode_image(encode(Image.fromarray(values), "PNG"))
    assert out.shape == (3, 1, 3)
    assert out[0, 0].tolist() == [0, 128, 255]


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encode(Image.fromarray(gradient()).convert("CMYK"), "JPEG", quality=95)
    out = decode_image(data)
    assert out.shape == (3, 48, 64)
    reference = as_chw(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    assert (out.int() - reference.int()).abs().float().mean() < 3.0


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_exif_orientation_applied(fmt: str) -> None:
    image = Image.fromarray(gradient(20, 40))  # 40 wide, 20 high
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = encode(image, fmt, exif=exif.tobytes(), quality=95)
    out = decode_image(data)
    assert out.shape == (3, 40, 20)


def test_empty_input() -> None:
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"")


@pytest.mark.parametrize(
    "data", [b"hello, this is not an image", b"\x00" * 100, b"\xff\xd8\xff" + b"\x00" * 50]
)
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data)
    assert info.value.status_code == 400
    assert str(info.value)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_images(fmt: str) -> None:
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = encode(noisy, fmt)
    with pytest.raises(ImageDecodeError, match=r"truncated|corrupt"):
        decode_image(data[: len(data) // 2])


def test_formats_outside_the_allow_list_are_refused() -> None:
    data = encode(Image.fromarray(gradient()), "PCX")
    with pytest.raises(ImageDecodeError, match="supported format"):
        decode_image(data)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(ImageDecodeError):
        decode_image(eps)


def test_header_bomb_refused_without_decoding() -> None:
    data = png_with_header_size(100_000, 100_000)
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as info:
        decode_image(data)
    assert time.perf_counter() - started < 1.0
    assert info.value.status_code == 400


def test_our_pixel_limit_applies_below_pils() -> None:
    with pytest.raises(ImageTooLargeError, match="5000x5000"):
        decode_image(png_with_header_size(5000, 5000), max_pixels=1_000_000)


def test_side_limit() -> None:
    with pytest.raises(ImageTooLargeError, match=str(MAX_SIDE)):
        decode_image(png_with_header_size(MAX_SIDE + 1, 4))


def test_pil_bomb_warning_is_escalated() -> None:
    # 1e8 pixels: above PIL's warning threshold (~8.9e7) but below its hard error, and within our limit.
    with pytest.raises(ImageTooLargeError):
        decode_image(png_with_header_size(10_000, 10_000), max_pixels=10**9)


def test_real_compressed_bomb() -> None:
    data = encode(Image.new("1", (3000, 3000)), "PNG")
    assert len(data) < 10_000  # tiny on the wire, 9 megapixels when decoded
    with pytest.raises(ImageTooLargeError):
        decode_image(data, max_pixels=1_000_000)


def test_max_bytes() -> None:
    data = encode(Image.fromarray(gradient()), "PNG")
    with pytest.raises(PayloadTooLargeError):
        decode_image(data, max_bytes=len(data) - 1)
    assert decode_image(data, max_bytes=len(data)).shape == (3, 48, 64)


def test_all_errors_are_inference_errors() -> None:
    for bad in (b"", b"junk", png_with_header_size(100_000, 100_000)):
        with pytest.raises(InferenceError):
            decode_image(bad)
