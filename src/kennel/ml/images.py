"""Untrusted image bytes → uint8 CHW RGB tensor, with the size checked before any pixel is decoded."""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageDecodeError, ImageTooLargeError, PayloadTooLargeError

MAX_SIDE = 16384

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Formats PIL may parse. Anything else (EPS would shell out to Ghostscript, exotic plugins are little
# exercised against hostile input) is refused instead of handed to a rarely used decoder.
_PIL_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "DIB", "GIF", "TIFF", "PPM", "TGA", "ICO", "AVIF")


def decode_image(data: bytes, *, max_pixels: int = 40_000_000, max_bytes: int = 20 << 20) -> torch.Tensor:
    """Decode JPEG/PNG (torchvision's fast decoders) or any allowed PIL format to uint8 CHW RGB.

    Grayscale, palette, alpha and CMYK inputs become RGB (alpha is dropped, not composited);
    EXIF orientation is applied; animated images give their first frame. The effective pixel limit
    is ``min(max_pixels, PIL.Image.MAX_IMAGE_PIXELS)``: PIL's bomb warning is treated as a refusal too.
    """
    if not data:
        raise ImageDecodeError("the image is empty (0 bytes)")
    if len(data) > max_bytes:
        raise PayloadTooLargeError(f"the image is {len(data)} bytes; the limit is {max_bytes} bytes")
    data = bytes(data)

    header = _open_header(data)
    width, height = header.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"the image header claims an empty size ({width}x{height})")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > max_pixels:
        raise ImageTooLargeError(
            f"the image is {width}x{height} pixels; the limit is {max_pixels} pixels and "
            f"{MAX_SIDE} pixels per side. Downscale it before sending."
        )

    if data.startswith(_JPEG_MAGIC) or data.startswith(_PNG_MAGIC):
        fast = _decode_fast(data)
        if fast is not None:
            return fast
    # Also the fallback for JPEG/PNG variants torchvision's decoders reject: PIL knows more of them,
    # and if the file really is corrupt PIL says so with a clearer message.
    return _decode_with_pil(header)


def _open_header(data: bytes) -> Image.Image:
    """``Image.open`` parses only the header; turn PIL's own bomb check into our error."""
    try:
        # Escalate PIL's bomb warning so a huge image is refused even when max_pixels was set above
        # PIL's limit. catch_warnings swaps process-wide filter state for the header parse only
        # (microseconds); a racing thread could at worst keep this one filter or lose one it added then.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=_allowed_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"the image is too large to decode safely: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            f"the bytes are not an image in a supported format ({', '.join(_allowed_formats())}); "
            f"they start with {data[:8]!r}"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise ImageDecodeError(f"the image header is corrupt: {exc}") from exc


def _allowed_formats() -> tuple[str, ...]:
    Image.init()  # registers the plugins; cheap after the first call
    return tuple(f for f in _PIL_FORMATS if f in Image.OPEN)


def _decode_fast(data: bytes) -> torch.Tensor | None:
    """torchvision's libjpeg-turbo/libpng decoders (no PIL object, no extra copy); None → use PIL."""
    try:
        # Imported here: torchvision has deprecated its codecs, and once they are gone PIL takes over
        # rather than the whole serving module failing to import.
        from torchvision.io import ImageReadMode, decode_jpeg, decode_png
    except ImportError:
        return None
    encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        if data.startswith(_JPEG_MAGIC):
            image = decode_jpeg(encoded, mode=ImageReadMode.RGB, apply_exif_orientation=True)
        else:
            image = decode_png(encoded, mode=ImageReadMode.RGB, apply_exif_orientation=True)
    except (RuntimeError, ValueError):
        return None
    assert isinstance(image, torch.Tensor)  # decode_jpeg returns a list only for list input
    if image.dtype == torch.uint16:  # 16-bit PNG: keep the high byte
        image = (image.to(torch.int32) >> 8).to(torch.uint8)
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        return None
    return image.contiguous()


def _decode_with_pil(image: Image.Image) -> torch.Tensor:
    kind = image.format or "image"
    try:
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image) or image
        array = _to_rgb_array(image)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError) as exc:
        detail = str(exc) or type(exc).__name__
        if "truncated" in detail.lower():
            raise ImageDecodeError(f"the {kind} image is truncated (incomplete upload?): {detail}") from exc
        raise ImageDecodeError(f"the {kind} image is corrupt and could not be decoded: {detail}") from exc
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16"):
        # PIL's I;16 → RGB conversion clips at 255 instead of scaling; keep the high byte like the PNG path.
        gray = (np.array(image).astype(np.uint16) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # avoids PIL's warning for palette transparency given as bytes
    if image.mode != "RGB":
        image = image.convert("RGB")
    array = np.array(image, dtype=np.uint8)  # a writable copy: torch warns on read-only buffers
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"unexpected decoded shape {array.shape}")
    return array
