"""Preprocessing: nested, flat, b64 PNG/JPEG of odd sizes, light and dark backgrounds, bad input."""

from __future__ import annotations

import base64
import io
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vertex_edge.preprocess import (
    MAX_IMAGE_PIXELS,
    PreprocessError,
    array_to_png,
    decode_image,
    image_to_array,
    instance_to_array,
)


def _encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def _boot(size: tuple[int, int], *, background: str, fill: str, mode: str = "RGB") -> Image.Image:
    """A tall rectangle (the 'object') at an off-centre place on a plain background."""
    w, h = size
    image = Image.new(mode, size, background)
    ImageDraw.Draw(image).rectangle([w // 5, h // 6, w // 5 + w // 4, h // 6 + h // 2], fill=fill)
    return image


def _bbox(arr: np.ndarray, threshold: float = 64) -> tuple[int, int, int, int]:
    rows = np.flatnonzero((arr > threshold).any(axis=1))
    cols = np.flatnonzero((arr > threshold).any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


# ----------------------------------------------------------------- numbers


def test_nested_list_passes_through_unchanged() -> None:
    values = np.arange(784).reshape(28, 28) % 256
    arr = instance_to_array(values.tolist())
    assert arr.dtype == np.float32 and arr.shape == (28, 28)
    np.testing.assert_array_equal(arr, values.astype(np.float32))


def test_flat_list_is_row_major() -> None:
    values = [float(i % 256) / 2 for i in range(784)]
    arr = instance_to_array(values)
    assert arr.shape == (28, 28)
    assert arr[1, 0] == values[28]
    assert arr[27, 27] == np.float32(values[783])


def test_numpy_array_is_accepted() -> None:
    arr = instance_to_array(np.full((784,), 7, dtype=np.uint8))
    assert arr.shape == (28, 28) and float(arr.max()) == 7.0


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        ([], "empty list"),
        ([1, 2, 3], "flat list has 3 values; expected 784"),
        ([[0] * 28] * 27, "27 rows; expected 28 rows"),
        ([[0] * 28] * 27 + [[0] * 29], "row 27 has 29 values"),
        ([[0] * 28] * 27 + [5], "row 27 is the number 5; expected a list of 28 numbers"),
        ([[[0]] * 28] * 28, "row 0, column 0 is a list"),
        ([0] * 783 + [256], "position 783 is 256, out of range; expected 0..255"),
        ([0] * 783 + [-0.5], "position 783 is -0.5, out of range"),
        ([[0] * 28] * 27 + [[0] * 27 + [300]], "row 27, column 27 is 300, out of range"),
        ([0] * 783 + [float("nan")], "position 783 is nan; expected a finite number"),
        ([0] * 783 + [float("inf")], "position 783 is inf"),
        ([0] * 783 + ["12"], "position 783 is a string ('12'); expected a number"),
        ([0] * 783 + [None], "position 783 is null"),
        ([0] * 783 + [True], "position 783 is a boolean (true)"),
        ([0] * 783 + [{"a": 1}], "position 783 is an object"),
        ([0] * 783 + [10**40], "position 783 is 1000000000000000000000000000000000000..., out of range"),
        (5, "got the number 5; expected a 28x28 nested list"),
        ("abc", "got a string"),
        (None, "got null"),
        ({"image": "x"}, "got an object with 'image'"),
        ({"b64": 5}, '"b64" is the number 5; expected a base64 string'),
        ({"b64": ""}, '"b64" is empty'),
        ({"b64": "not base64!"}, "not valid base64"),
        ({"b64": base64.b64encode(b"hello world").decode()}, "not an image that can be read"),
    ],
)
def test_bad_instances_say_what_is_wrong(instance: object, expected: str) -> None:
    with pytest.raises(PreprocessError) as info:
        instance_to_array(instance)
    assert expected in str(info.value)
    assert isinstance(info.value, ValueError)


# ----------------------------------------------------------------- images


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("size", [(37, 101), (640, 480), (29, 29), (1500, 900)])
def test_dark_object_on_light_background_becomes_light_on_dark_fitted_and_centred(fmt: str, size) -> None:
    image = _boot(size, background="white", fill=(20, 20, 20))
    arr = instance_to_array(_b64(_encode(image, fmt)))
    assert arr.shape == (28, 28) and arr.dtype == np.float32
    assert float(arr.min()) >= 0 and float(arr.max()) <= 255
    # background inverted to dark, object light
    assert arr[0, 0] < 10 and arr[14, 14] > 200
    top, bottom, left, right = _bbox(arr)
    # the longest edge (height) fills the 28 rows, aspect ratio kept, centred left-right
    assert top <= 2 and bottom >= 25
    width = right - left + 1
    expected_w = 28 * (size[0] // 4 + 1) / (size[1] // 2 + 1)
    assert abs(width - expected_w) <= 3
    assert abs((left + right) / 2 - 13.5) <= 1.5


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_light_object_on_dark_background_is_not_inverted(fmt: str) -> None:
    image = _boot((90, 61), background="black", fill=(230, 230, 230))
    arr = instance_to_array(_b64(_encode(image, fmt)))
    assert arr[0, 0] < 10 and arr[14, 14] > 200


def test_grey_background_is_levelled_to_zero() -> None:
    image = _boot((100, 100), background=(200, 200, 200), fill=(0, 0, 0))
    arr = instance_to_array(_b64(_encode(image)))
    assert arr[0, 0] == 0 and arr[14, 14] > 250


def test_transparent_png_uses_a_contrasting_background() -> None:
    dark = _boot((64, 64), background=(0, 0, 0, 0), fill=(10, 10, 10, 255), mode="RGBA")
    light = _boot((64, 64), background=(0, 0, 0, 0), fill=(250, 250, 250, 255), mode="RGBA")
    for image in (dark, light):
        arr = instance_to_array(_b64(_encode(image)))
        assert arr[0, 0] < 10 and arr[14, 14] > 200


@pytest.mark.parametrize("mode", ["L", "P", "1", "LA", "CMYK", "I;16"])
def test_other_modes(mode: str) -> None:
    base = _boot((50, 40), background="white", fill="black").convert("L")
    image = base.convert(mode) if mode != "I;16" else Image.fromarray(np.asarray(base).astype(np.uint16) * 257)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    arr = image_to_array(decode_image(_encode(image, fmt)))
    assert arr[0, 0] < 10 and arr[14, 14] > 200


def test_blank_image_gives_zeros() -> None:
    arr = instance_to_array(_b64(_encode(Image.new("L", (30, 30), 255))))
    assert not arr.any()


def test_28x28_fashion_mnist_style_png_round_trips() -> None:
    rng = np.random.default_rng(0)
    original = np.zeros((28, 28), dtype=np.uint8)
    original[0:28, 6:22] = rng.integers(60, 255, size=(28, 16))  # fills the height, like a dress
    arr = instance_to_array(_b64(array_to_png(original.astype(np.float32))))
    assert np.abs(arr - original).mean() < 8


def test_base64_variants_are_accepted() -> None:
    png = _encode(_boot((40, 40), background="white", fill="black"))
    standard = base64.b64encode(png).decode()
    reference = instance_to_array({"b64": standard})
    variants = [
        base64.urlsafe_b64encode(png).decode(),
        standard.rstrip("="),
        "\n".join(standard[i : i + 76] for i in range(0, len(standard), 76)),
        "data:image/png;base64," + standard,
    ]
    for variant in variants:
        np.testing.assert_array_equal(instance_to_array({"b64": variant}), reference)


def test_exif_orientation_is_applied() -> None:
    image = Image.new("L", (60, 20), 255)
    ImageDraw.Draw(image).rectangle([10, 6, 49, 13], fill=0)  # a wide bar...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...stored rotated: displayed upright it is tall
    arr = image_to_array(decode_image(_encode(image.convert("RGB"), "JPEG", exif=exif)))
    top, bottom, left, right = _bbox(arr)
    assert bottom - top > right - left


def test_truncated_and_corrupt_images_are_refused() -> None:
    png = _encode(_boot((200, 200), background="white", fill="black"))
    with pytest.raises(PreprocessError, match="corrupt or truncated"):
        decode_image(png[: len(png) // 2])
    with pytest.raises(PreprocessError):
        decode_image(png[:40] + b"\x00" * 60)
    with pytest.raises(PreprocessError, match="empty"):
        decode_image(b"")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    bomb = _encode(Image.new("1", (20000, 20000), 0))  # a few KB of PNG, 400 M pixels
    assert len(bomb) < 200_000
    with pytest.raises(PreprocessError, match="pixels"):
        decode_image(bomb)
    with pytest.raises(PreprocessError, match="over the limit of 100"):
        decode_image(_encode(Image.new("L", (11, 10))), max_pixels=100)
    assert MAX_IMAGE_PIXELS <= 20_000_000


def test_unsafe_formats_are_not_decoded() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(PreprocessError, match="not an image that can be read"):
        decode_image(eps)


def test_array_to_png_shows_what_the_model_saw() -> None:
    arr = np.linspace(0, 255, 784, dtype=np.float32).reshape(28, 28)
    png = array_to_png(arr)
    back = np.asarray(Image.open(io.BytesIO(png)))
    assert back.shape == (28, 28) and back.dtype == np.uint8
    assert np.abs(back.astype(np.float32) - arr).max() <= 0.5 + 1e-3
    with pytest.raises(PreprocessError):
        array_to_png(np.zeros((3, 4, 5)))


def test_preprocess_does_not_import_tensorflow() -> None:
    code = "import sys, vertex_edge.preprocess as p; p.instance_to_array([0]*784); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_math_sanity_of_fit() -> None:
    # a 1-pixel dot is scaled up to fill the canvas height, centred
    image = Image.new("L", (9, 9), 255)
    image.putpixel((2, 2), 0)
    arr = instance_to_array(_b64(_encode(image)))
    assert math.isclose(float(arr.max()), 255.0, abs_tol=1.0)


def test_large_jpeg_is_decoded_at_reduced_scale_unless_full_size() -> None:
    data = _encode(_boot((4000, 3000), background="white", fill="black"), "JPEG")
    assert decode_image(data).size == (2000, 1500)  # libjpeg draft: 1/2 scale, >= 1024 a side
    assert decode_image(data, full_size=True).size == (4000, 3000)
    small = _encode(_boot((300, 200), background="white", fill="black"), "JPEG")
    assert decode_image(small).size == (300, 200)
