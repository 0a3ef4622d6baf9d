"""The one preprocessing module: prediction instances -> the 28x28 arrays the model takes.

Shared by the prediction server and the web app, so both see exactly the same pixels.
It imports numpy and Pillow only (never TensorFlow).

An *instance* is one of:

* a 28x28 nested list of numbers in 0..255,
* a flat list of 784 numbers in 0..255 (row-major),
* ``{"b64": "<base64 PNG/JPEG/...>"}`` - an image of any size, made into a 28x28 grayscale
  picture the way Fashion-MNIST images were made (Xiao et al. 2017): grayscale, a light
  background inverted to dark, edges of the background's colour trimmed, the longest edge
  resized to 28 pixels (aspect kept) and the object centred on a dark 28x28 canvas.

Numbers are given to the model as they are (Fashion-MNIST convention: 0 = dark background,
255 = full-intensity object). Every problem raises :class:`PreprocessError` with a message
saying what was wrong and what was expected; callers prefix the instance index.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import math
import re
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SIDE = 28
PIXELS = SIDE * SIDE
#: Longest edge of the object after fitting. Fashion-MNIST resizes the longest edge to 28.
FIT = 28
#: Decompression-bomb limit: images with more pixels are refused before they are decoded.
MAX_IMAGE_PIXELS = 4096 * 4096
#: Formats Pillow may decode here. Restricting them keeps e.g. EPS (Ghostscript) out.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
#: Large images are box-reduced to at most this longest edge before any float work.
_WORK_EDGE = 1024
#: Fashion-MNIST trims edges within 5% of the maximum intensity of the background colour.
_TRIM = 0.05 * 255
_EXPECTED = 'a 28x28 nested list or a flat list of 784 numbers in 0..255, or {"b64": "<base64 PNG/JPEG>"}'
_DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w=.+-]+)*;base64,", re.IGNORECASE)


class PreprocessError(ValueError):
    """An instance that cannot be turned into a 28x28 image. The message says what was wrong
    and what was expected; callers add which instance it was."""


# --------------------------------------------------------------------------- images


def decode_image(data: bytes, *, max_pixels: int = MAX_IMAGE_PIXELS, full_size: bool = False) -> Image.Image:
    """Decode PNG/JPEG/WebP/GIF/BMP/TIFF bytes into a loaded, upright Pillow image.

    A large JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's draft mode), never below
    1024 pixels a side, unless ``full_size``: several times faster for a phone photo, and
    plenty for a 28x28 result. Raises :class:`PreprocessError` for data that is not a readable
    image, or an image of more than ``max_pixels`` pixels (checked from the header, before
    decoding).
    """
    return load_image(open_image(data, max_pixels=max_pixels, full_size=full_size))


def open_image(data: bytes, *, max_pixels: int = MAX_IMAGE_PIXELS, full_size: bool = False) -> Image.Image:
    """The first step of :func:`decode_image`: the header is read and checked, nothing is decoded
    yet. The image's ``size`` is what :func:`load_image` will decode (a large JPEG: at its draft
    scale), so a caller can budget the work before paying for it."""
    image = _open(data, max_pixels)
    if image.format == "JPEG" and not full_size:
        with contextlib.suppress(Exception):  # draft is an optimisation only
            image.draft("RGB", (_WORK_EDGE, _WORK_EDGE))
    return image


def load_image(image: Image.Image) -> Image.Image:
    """The second step of :func:`decode_image`: decode an :func:`open_image` image, upright."""
    _load(image)
    return _upright(image)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PreprocessError(f"image data must be bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise PreprocessError("image data is empty; expected a PNG or JPEG file")
    try:
        image = Image.open(io.BytesIO(bytes(data)), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PreprocessError(f"image has too many pixels (limit {max_pixels:,})") from None
    except UnidentifiedImageError:
        raise PreprocessError(
            f"data is not an image that can be read; expected one of {', '.join(ALLOWED_FORMATS)}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for corrupt headers
        raise PreprocessError(f"image header is corrupt ({type(exc).__name__}: {exc})") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise PreprocessError(f"image is {width}x{height} pixels; expected at least 1x1")
    if width * height > max_pixels:
        raise PreprocessError(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}"
        )
    return image


def _load(image: Image.Image) -> None:
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PreprocessError("image has too many pixels") from None
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt data raises OSError, SyntaxError, ...
        raise PreprocessError(f"image data is corrupt or truncated ({type(exc).__name__}: {exc})") from None


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (phone photos), in place: without an orientation tag Pillow
    would otherwise return a copy (a 4096x4096 RGBA image is 64 MB more while it is decoded)."""
    with contextlib.suppress(Exception):  # a broken EXIF block must not make the image unusable
        ImageOps.exif_transpose(image, in_place=True)
    return image


def image_to_array(image: Image.Image) -> np.ndarray:
    """A Pillow image of any size and mode -> float32 (28, 28) in 0..255, Fashion-MNIST style.

    Grayscale (transparency composited onto a contrasting background), a light background
    inverted to dark and levelled to 0, the object cropped to its bounding box (edges within 5%
    of the background colour trimmed), its longest edge resized to 28 (aspect kept) and centred
    on a dark 28x28 canvas. A blank image gives all zeros.
    """
    image = _reduce(image)
    gray = _to_gray(image)
    border = np.concatenate([gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 127.5:
        gray = 255.0 - gray
        background = 255.0 - background
    # level: the background goes to 0, full intensity stays 255
    gray = np.clip((gray - background) * (255.0 / (255.0 - background)), 0.0, 255.0)
    # a pixel counts as object when it and its 3x3 neighbourhood differ from the background:
    # isolated JPEG/sensor noise does not stretch the bounding box
    mask = (gray > _TRIM) & (_box_mean3(gray) > _TRIM)
    if not mask.any():
        return np.zeros((SIDE, SIDE), dtype=np.float32)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    crop = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = crop.shape
    scale = FIT / max(height, width)
    new_w = min(FIT, max(1, round(width * scale)))
    new_h = min(FIT, max(1, round(height * scale)))
    resized = Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32), mode="F").resize(
        (new_w, new_h), Image.Resampling.LANCZOS
    )
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    top, left = (SIDE - new_h) // 2, (SIDE - new_w) // 2
    out[top : top + new_h, left : left + new_w] = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)
    return out


def _box_mean3(arr: np.ndarray) -> np.ndarray:
    padded = np.pad(arr, 1, mode="edge")
    height, width = arr.shape
    total = np.zeros_like(arr)
    for dy in range(3):
        for dx in range(3):
            total += padded[dy : dy + height, dx : dx + width]
    return total / 9.0


def _reduce(image: Image.Image) -> Image.Image:
    longest = max(image.size)
    if longest <= _WORK_EDGE:
        return image
    factor = math.ceil(longest / _WORK_EDGE)
    if image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    return image.reduce(factor)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _to_gray(image: Image.Image) -> np.ndarray:
    """float32 luminance 0..255; transparent areas get a background that contrasts with the object."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image, dtype=np.float32) / 257.0
    if image.mode in ("I", "F"):
        arr = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(arr.min()), float(arr.max())
        return (arr - low) * (255.0 / (high - low)) if high > low else np.zeros_like(arr)
    if not _has_alpha(image):
        return np.asarray(image.convert("L"), dtype=np.float32)
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
    alpha = rgba[..., 3] / 255.0
    lum = rgba[..., 0] * 0.299 + rgba[..., 1] * 0.587 + rgba[..., 2] * 0.114
    if alpha.min() >= 1.0:
        return lum
    opaque = alpha > 0.5
    object_level = float(lum[opaque].mean()) if opaque.any() else 0.0
    back = 0.0 if object_level > 127.5 else 255.0
    return lum * alpha + back * (1.0 - alpha)


def array_to_png(array: np.ndarray) -> bytes:
    """The 28x28 image the model saw, as 8-bit grayscale PNG bytes (for display)."""
    arr = np.asarray(array, dtype=np.float32)
    if arr.shape == (PIXELS,):
        arr = arr.reshape(SIDE, SIDE)
    if arr.ndim != 2 or arr.size == 0:
        raise PreprocessError(f"expected a 2-D image array such as 28x28, got shape {arr.shape}")
    arr = np.clip(np.rint(np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- instances


def instance_to_array(instance: object, *, check_booleans: bool = True) -> np.ndarray:
    """One prediction instance -> float32 (28, 28), values 0..255. See the module docstring.

    JSON ``true``/``false`` are refused as non-numeric. Finding them costs a pass over the
    values, so a caller that knows there are none (the server: no ``true``/``false`` literal
    anywhere in the raw body) may pass ``check_booleans=False``.
    """
    if isinstance(instance, dict):
        return _from_b64_instance(instance)
    if isinstance(instance, np.ndarray):
        return _from_ndarray(instance)
    if isinstance(instance, (list, tuple)):
        return _from_numbers(instance, check_booleans)
    raise PreprocessError(f"got {_describe(instance)}; expected {_EXPECTED}")


def _from_b64_instance(instance: dict) -> np.ndarray:
    return image_to_array(load_image(open_b64_instance(instance)))


def open_b64_instance(instance: dict, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """A ``{"b64": ...}`` instance's image, opened by :func:`open_image` (header read, nothing
    decoded); :class:`PreprocessError` when the instance or its data is not usable."""
    if set(instance) != {"b64"}:
        keys = ", ".join(repr(str(k)) for k in list(instance)[:5]) or "no keys"
        raise PreprocessError(f'got an object with {keys}; expected {{"b64": "<base64 PNG/JPEG>"}}')
    value = instance["b64"]
    if not isinstance(value, str):
        raise PreprocessError(f'"b64" is {_describe(value)}; expected a base64 string of a PNG or JPEG file')
    return open_image(b64_to_bytes(value), max_pixels=max_pixels)


def b64_to_bytes(value: str) -> bytes:
    """Decode standard or URL-safe base64 (padding optional, whitespace and a data: URL prefix allowed)."""
    text = _DATA_URL.sub("", value.strip(), count=1)
    text = "".join(text.split())
    if not text:
        raise PreprocessError('"b64" is empty; expected a base64 string of a PNG or JPEG file')
    text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PreprocessError('"b64" is not valid base64; expected a base64 string of a PNG or JPEG file') from None
    if not data:
        raise PreprocessError('"b64" decodes to no bytes; expected a PNG or JPEG file')
    return data


def _from_ndarray(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind not in "iuf":
        raise PreprocessError(f"array has dtype {arr.dtype}; expected numbers in 0..255")
    if arr.shape not in ((SIDE, SIDE), (PIXELS,)):
        raise PreprocessError(f"array has shape {arr.shape}; expected (28, 28) or (784,)")
    return _checked(arr.reshape(SIDE, SIDE), nested=True, source=None)


def _from_numbers(values: Sequence[object], check_booleans: bool = True) -> np.ndarray:
    if len(values) == 0:
        raise PreprocessError(f"the instance is an empty list; expected {_EXPECTED}")
    nested = isinstance(values[0], (list, tuple))
    if nested:
        if len(values) != SIDE:
            raise PreprocessError(f"nested list has {len(values)} rows; expected 28 rows of 28 numbers")
        for r, row in enumerate(values):
            if not isinstance(row, (list, tuple)):
                raise PreprocessError(f"row {r} is {_describe(row)}; expected a list of 28 numbers")
            if len(row) != SIDE:
                raise PreprocessError(f"row {r} has {len(row)} values; expected 28 rows of 28 numbers")
        has_bool = check_booleans and any(bool in map(type, row) for row in values)
    else:
        if len(values) != PIXELS:
            raise PreprocessError(
                f"flat list has {len(values)} values; expected 784 (a 28x28 image, row by row) or 28 rows of 28"
            )
        has_bool = check_booleans and bool in map(type, values)
    if has_bool:
        _diagnose(values, nested)
    try:
        arr = np.array(values)
    except (ValueError, TypeError, OverflowError):
        _diagnose(values, nested)
        raise PreprocessError(f"values are not numbers; expected {_EXPECTED}") from None  # pragma: no cover
    if arr.dtype.kind not in "iuf" or arr.shape not in ((SIDE, SIDE), (PIXELS,)):
        _diagnose(values, nested)
        raise PreprocessError(f"values are not numbers; expected {_EXPECTED}")  # pragma: no cover
    return _checked(arr.reshape(SIDE, SIDE), nested=nested, source=values)


def _checked(arr: np.ndarray, *, nested: bool, source: Sequence[object] | None) -> np.ndarray:
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            r, c = (int(i) for i in np.argwhere(~finite)[0])
            raise PreprocessError(f"value at {_where(r, c, nested)} is {arr[r, c]}; expected a finite number in 0..255")
    bad = (arr < 0) | (arr > 255)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        value = source[r][c] if (source is not None and nested) else (source[r * SIDE + c] if source else arr[r, c])
        raise PreprocessError(f"value at {_where(r, c, nested)} is {value!r}, out of range; expected 0..255")
    return arr.astype(np.float32)


def _diagnose(values: Sequence[object], nested: bool) -> None:
    """Find the first value that is not a number and raise a precise error (slow path)."""
    flat = (
        ((r, c, v) for r, row in enumerate(values) for c, v in enumerate(row))  # type: ignore[arg-type]
        if nested
        else ((i // SIDE, i % SIDE, v) for i, v in enumerate(values))
    )
    for r, c, v in flat:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise PreprocessError(f"value at {_where(r, c, nested)} is {_describe(v)}; expected a number in 0..255")
        if isinstance(v, int) and not 0 <= v <= 255:
            raise PreprocessError(f"value at {_where(r, c, nested)} is {_short(v)}, out of range; expected 0..255")


def _where(r: int, c: int, nested: bool) -> str:
    return f"row {r}, column {c}" if nested else f"position {r * SIDE + c}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({_short(value)})"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} values"
    if isinstance(value, (int, float)):
        return f"the number {_short(value)}"
    return f"a {type(value).__name__}"
