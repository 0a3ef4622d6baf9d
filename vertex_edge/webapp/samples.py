"""The gallery: sample product photos shipped in ``static/samples``, listed with their true class
in ``static/samples/samples.json`` (written by ``services/webapp/make_samples.py``)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).parent / "static" / "samples"
MANIFEST = "samples.json"


@dataclass(frozen=True)
class Sample:
    id: str  # the file stem, e.g. "7-sneaker"
    class_id: int
    label: str  # the image's true class
    path: Path

    @property
    def static_path(self) -> str:
        return f"samples/{self.path.name}"


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def load_samples(directory: Path = SAMPLES_DIR) -> dict[str, Sample]:
    """Every sample the manifest lists whose image is there, by id, in class order. A missing or
    broken manifest means no gallery (logged), never a failed start."""
    try:
        entries = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))["samples"]
        found = [
            Sample(id=Path(e["file"]).stem, class_id=int(e["class_id"]), label=str(e["label"]), path=directory / e["file"])
            for e in entries
            if (directory / str(e["file"])).is_file()
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("no sample gallery: %s/%s is missing or invalid (%s)", directory, MANIFEST, exc)
        return {}
    return {s.id: s for s in sorted(found, key=lambda s: (s.class_id, s.id))}
