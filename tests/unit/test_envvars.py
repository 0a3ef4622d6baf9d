"""One reader of settings from environment variables for every server."""

from __future__ import annotations

import pytest

from vertex_edge.envvars import read_env
from vertex_edge.errors import ConfigError

SPEC = {"X_N": ("n", int), "X_F": ("f", float), "X_S": ("s", str), "X_L": ("l", tuple), "X_B": ("b", bool)}


def test_set_variables_become_typed_values_and_empty_ones_count_as_unset() -> None:
    env = {"X_N": " 3 ", "X_F": "0.5", "X_S": "a b", "X_L": "10.0.0.0/8, ,127.0.0.1", "X_B": "False", "OTHER": "1"}
    assert read_env(env, SPEC) == {"n": 3, "f": 0.5, "s": "a b", "l": ("10.0.0.0/8", "127.0.0.1"), "b": False}
    assert read_env({"X_N": "", "X_S": "   "}, SPEC) == {}


@pytest.mark.parametrize(
    ("env", "message"),
    [({"X_N": "1.5"}, "X_N='1.5' is not a whole number"), ({"X_F": "fast"}, "X_F='fast' is not a number"),
     ({"X_B": "maybe"}, "X_B='maybe': expected 1 or 0")],
)  # fmt: skip
def test_a_value_of_the_wrong_kind_names_the_variable_and_what_it_held(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_env(env, SPEC)
