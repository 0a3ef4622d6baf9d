"""Figures as text, the same on the pages and in the terminal (``edge.py experiments``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


def number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def percent(value: Any) -> str:
    return f"{value * 100:.2f} %" if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"


def when(value: Any) -> str:
    """An ISO time as ``2026-11-20 09:00:05 UTC``."""
    if not isinstance(value, str) or not value:
        return "—"
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return value


def duration(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "—"
    s = int(round(value))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else (f"{m}m {sec:02d}s" if m else f"{sec}s")


def param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
