"""Typed views of ``params.yaml`` (the DVC params file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vertex_edge.config import load_yaml_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AugmentParams(_Strict):
    flip: bool = True
    shift: int = Field(default=0, ge=0, le=8)


class ModelParams(_Strict):
    filters: list[int] = Field(default_factory=lambda: [24, 64, 128], min_length=1, max_length=4)
    dense: int = Field(default=256, ge=8)
    dropout: float = Field(default=0.25, ge=0.0, lt=1.0)
    dense_dropout: float = Field(default=0.4, ge=0.0, lt=1.0)
    mirror_average: bool = True  # predict on the image and its mirror image, average (test-time augmentation)


class TrainParams(_Strict):
    seed: int = 42
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=0.002, gt=0)
    validation_split: float = Field(default=0.1, ge=0.0, lt=0.9)
    early_stopping_patience: int = Field(default=3, ge=0)
    subset: int = Field(default=0, ge=0)
    augment: AugmentParams = AugmentParams()
    model: ModelParams = ModelParams()


class EvaluateParams(_Strict):
    min_accuracy: float = Field(default=0.9, ge=0.0, le=1.0)


class Params(BaseModel):
    model_config = ConfigDict(extra="allow")  # other sections belong to other stages

    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()

    @model_validator(mode="before")
    @classmethod
    def _none_is_empty(cls, data: Any) -> Any:
        return data or {}


def load_params(path: Path) -> Params:
    return load_yaml_model(path, Params, what="params file")
