"""The byte-level reader of the common request body agrees with the full JSON path: whatever it
accepts, the full path accepts with the same values; whatever the full path refuses, it leaves
to the full path (returns None)."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vertex_edge.serving.app import Problem, _instances, _to_batch
from vertex_edge.serving.pixels import read_pixels

MAX = 16


def full_path(body: bytes, max_instances: int = MAX) -> np.ndarray | None:
    """What the server's JSON path makes of ``body``: the batch, or None for a 400."""
    try:
        payload = orjson.loads(body)
        return _to_batch(_instances(payload, max_instances), b"true" in body or b"false" in body)
    except (ValueError, Problem):
        return None


def _images(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28))
    images[:, :3] = 0  # zeros and one-, two- and three-digit values all occur
    images[:, 3, :10] = np.arange(10)
    return images


@pytest.mark.parametrize("count", [1, 2, 7, MAX])
@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("separators", [(", ", ": "), (",", ":")])
def test_reads_what_clients_send(count: int, flat: bool, separators: tuple[str, str]) -> None:
    images = _images(count)
    instances = images.reshape(count, -1) if flat else images
    body = json.dumps({"instances": instances.tolist()}, separators=separators).encode()
    got = read_pixels(body, MAX)
    assert got is not None and got.dtype == np.float32 and got.shape == (count, 28, 28)
    assert np.array_equal(got, images)
    assert np.array_equal(got, full_path(body))


def test_surrounding_whitespace_is_allowed() -> None:
    inner = json.dumps(_images(1)[0].tolist()).encode()
    body = b' \r\n{ "instances" :\t[' + inner + b"]\n}\n "
    assert np.array_equal(read_pixels(body, MAX), _images(1))


ONE = json.dumps(_images(1)[0].tolist(), separators=(",", ":"))


def _body(instances: str) -> bytes:
    return ('{"instances": [' + instances + "]}").encode()


@pytest.mark.parametrize(
    "body",
    [
        _body(ONE.replace(",0,", ",00,", 1)),  # leading zero: not JSON
        _body(ONE.replace(",0,", ",-0,", 1)),
        _body(ONE.replace(",0,", ",0.0,", 1)),
        _body(ONE.replace(",0,", ",1e2,", 1)),
        _body(ONE.replace(",0,", ",256,", 1)),  # out of range: the full path names it
        _body(ONE.replace(",0,", ",1000,", 1)),
        _body(ONE.replace(",0,", "," + "9" * 30 + ",", 1)),
        _body(ONE.replace(",0,", ",true,", 1)),
        _body(ONE.replace(",0,", ",,", 1)),  # an empty slot
        _body(ONE.replace(",0,", ",0 0,", 1)),  # two numbers in one slot
        _body(ONE.replace(",0,", ",0 ,", 1)),  # valid JSON, but spacing the reader leaves to the full path
        _body(ONE.replace("],[", "],7,[", 1)),  # a stray number between rows
        _body(ONE.replace("],[", "]7,[", 1)),
        _body(ONE.replace("[0,", "[,0,", 1)),
        _body(ONE.replace("],[", "],\n[", 1)),
        _body(ONE[:-1] + ",5]"),  # 29 rows
        _body(ONE.replace(",0]", "]", 1) + "," + ONE.replace("[0,", "[0,0,", 1)),  # 27 + 29 values
        _body(ONE + "," + json.dumps(_images(1).reshape(-1).tolist())),  # nested and flat mixed
        _body(""),
        b'{"instances": [' + ONE.encode() + b'], "parameters": {}}',
        b'{"instances": [' + ONE.encode() + b"]}}",
        b'{"instances": [' + ONE.encode() + b"]} x",
        b'{"instances": [' + ONE.encode() + b"]",
        b'{"instances": ' + ONE.encode() + b"}",  # one image, not a list of images
        b'\xef\xbb\xbf{"instances": [' + ONE.encode() + b"]}",
        b'{"instances": [' + b",".join([ONE.encode()] * (MAX + 1)) + b"]}",  # over max_instances
    ],
)
def test_anything_unusual_is_left_to_the_full_path(body: bytes) -> None:
    assert read_pixels(body, MAX) is None


def test_valid_but_unusual_json_is_still_answered_by_the_full_path() -> None:
    spaced = _body(ONE.replace(",0,", ",0 ,", 1))
    assert read_pixels(spaced, MAX) is None and full_path(spaced) is not None


_MUTATION_CHARS = '0123456789,[] -.e\n"tf{}:'


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(1, 3),
    flat=st.booleans(),
    compact=st.booleans(),
    edits=st.lists(
        st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.floats(0, 1), st.sampled_from(_MUTATION_CHARS)),
        min_size=1,
        max_size=3,
    ),
)
def test_never_accepts_what_the_full_path_refuses_nor_reads_other_values(
    count: int, flat: bool, compact: bool, edits: list[tuple[str, float, str]]
) -> None:
    images = _images(count, seed=count)
    instances = images.reshape(count, -1) if flat else images
    separators = (",", ":") if compact else (", ", ": ")
    text = bytearray(json.dumps({"instances": instances.tolist()}, separators=separators).encode())
    for kind, where, char in edits:
        at = min(len(text) - 1, int(where * len(text)))
        if kind == "insert":
            text[at:at] = char.encode()
        elif kind == "delete":
            del text[at]
        else:
            text[at : at + 1] = char.encode()
    body = bytes(text)
    got = read_pixels(body, MAX)
    if got is not None:
        expected = full_path(body)
        assert expected is not None, body
        assert got.dtype == expected.dtype == np.float32
        assert np.array_equal(got, expected), body
