"""Settings read from environment variables, one way for every server: empty means unset, a value
that is not of the expected kind is a :class:`ConfigError` naming the variable and what it held.

``read_env(env, {"EDGE_MAX_BATCH": ("max_batch", int), ...})`` returns ``{"max_batch": 32}`` for
the variables that are set; the caller's typed settings class then checks ranges.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vertex_edge.errors import ConfigError

#: what a variable may hold: text, a whole number, a number, a comma-separated list, or a boolean
Kind = type[str] | type[int] | type[float] | type[tuple] | type[bool]

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def read_env(env: Mapping[str, str], spec: Mapping[str, tuple[str, Kind]]) -> dict[str, Any]:
    """``{field: value}`` for each variable of ``spec`` (``var -> (field, kind)``) that ``env`` sets."""
    values: dict[str, Any] = {}
    for var, (key, kind) in spec.items():
        raw = env.get(var, "").strip()
        if raw:
            values[key] = _parse(var, raw, kind)
    return values


def _parse(var: str, raw: str, kind: Kind) -> Any:
    if kind is str:
        return raw
    if kind is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if kind is bool:
        if raw.lower() in _TRUE + _FALSE:
            return raw.lower() in _TRUE
        raise ConfigError(f"{var}={raw!r}: expected 1 or 0 (true or false)")
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not {'a whole number' if kind is int else 'a number'}") from None
