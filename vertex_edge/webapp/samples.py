"""The gallery: sample product photos shipped in ``static/samples`` (``<class id>-<slug>.png``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vertex_edge.webapp.client import CLASS_NAMES

SAMPLES_DIR = Path(__file__).parent / "static" / "samples"
_NAME_RE = re.compile(r"^(\d)-([a-z0-9-]+)\.png$")


@dataclass(frozen=True)
class Sample:
    id: str  # the file stem, e.g. "7-sneaker"
    class_id: int
    label: str
    path: Path

    @property
    def static_path(self) -> str:
        return f"samples/{self.path.name}"


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def load_samples(directory: Path = SAMPLES_DIR) -> dict[str, Sample]:
    """Every sample in ``directory``, by id, in class order."""
    found: list[Sample] = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = _NAME_RE.match(path.name)
            if match and path.is_file():
                class_id = int(match.group(1))
                found.append(Sample(id=path.stem, class_id=class_id, label=CLASS_NAMES[class_id], path=path))
    return {s.id: s for s in sorted(found, key=lambda s: (s.class_id, s.id))}
