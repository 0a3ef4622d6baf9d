"""The dataset manifest (``data/fashion-mnist.yaml``): names, sources and checksums."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vertex_edge.config import load_yaml_model

DEFAULT_MANIFEST = Path("data/fashion-mnist.yaml")


class DataFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+\.gz$")
    split: Literal["train", "test"]
    kind: Literal["images", "labels"]
    count: int = Field(gt=0)
    md5: str = Field(pattern=r"^[0-9a-f]{32}$")
    md5_uncompressed: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")


class DatasetManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    dir: str
    sources: list[str] = Field(default_factory=list)
    image_shape: tuple[int, int] = (28, 28)
    labels: list[str] = Field(min_length=2)
    files: list[DataFile] = Field(min_length=1)

    @model_validator(mode="after")
    def _pairs(self) -> DatasetManifest:
        for split in ("train", "test"):
            kinds = sorted(f.kind for f in self.files if f.split == split)
            if kinds != ["images", "labels"]:
                raise ValueError(f"split {split!r} needs exactly one images file and one labels file")
            counts = {f.count for f in self.files if f.split == split}
            if len(counts) != 1:
                raise ValueError(f"split {split!r}: images and labels counts differ")
        return self

    def file(self, split: str, kind: str) -> DataFile:
        return next(f for f in self.files if f.split == split and f.kind == kind)

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def load_manifest(path: Path) -> DatasetManifest:
    return load_yaml_model(path, DatasetManifest, what="dataset manifest")
