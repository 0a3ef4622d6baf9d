"""Typed views of ``params.yaml`` (the DVC params file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vertex_edge.config import load_yaml_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AugmentParams(_Strict):
    flip: bool = True
    shift: int = Field(default=0, ge=0, le=8)
    erase: float = Field(default=0.0, ge=0.0, le=1.0)  # probability of blanking a random rectangle (random erasing)


class ModelParams(_Strict):
    filters: list[int] = Field(default_factory=lambda: [24, 64, 128], min_length=1, max_length=4)
    convs: int = Field(default=1, ge=1, le=3)  # 3x3 convolutions per block (the last one before the pool)
    dense: int = Field(default=256, ge=8)
    dropout: float = Field(default=0.25, ge=0.0, lt=1.0)
    dense_dropout: float = Field(default=0.4, ge=0.0, lt=1.0)
    mirror_average: bool = True  # predict on the image and its mirror image, average (test-time augmentation)


DEFAULT_PROFILE = "default"


class TrainParams(_Strict):
    # ``profile`` names an entry of ``profiles`` whose values replace these (nested sections merged
    # key by key), e.g. ``-S train.profile=gpu`` for a Vertex AI GPU job; "default": no overrides.
    profile: str = DEFAULT_PROFILE
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)
    seed: int = 42
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=0.002, gt=0)
    warmup_epochs: float = Field(default=0.0, ge=0.0)  # linear warm-up to learning_rate (at most half the run)
    weight_decay: float = Field(default=0.0, ge=0.0, lt=1.0)  # decoupled (AdamW): w -= weight_decay * lr * w
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    ema_momentum: float = Field(default=0.0, ge=0.0, lt=1.0)  # weight moving average (0: off)
    precision: Literal["float32", "mixed_bfloat16"] = "float32"  # training only: the export is float32
    validation_split: float = Field(default=0.1, ge=0.0, lt=0.9)
    early_stopping_patience: int = Field(default=3, ge=0)
    subset: int = Field(default=0, ge=0)
    augment: AugmentParams = AugmentParams()
    model: ModelParams = ModelParams()

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        profiles = data.get("profiles") or {}
        if not isinstance(profiles, dict):
            return data  # field validation reports it
        for name, overrides in profiles.items():
            if not isinstance(overrides, dict):
                continue  # field validation reports it
            if {"profile", "profiles"} & set(overrides):
                raise ValueError(f"profiles.{name} cannot set 'profile' or 'profiles'")
            base = {k: v for k, v in data.items() if k not in ("profile", "profiles")}
            try:  # every profile must validate, not only the selected one
                cls.model_validate(_merge(base, overrides))
            except ValidationError as exc:
                problems = "; ".join(
                    ": ".join(filter(None, (".".join(map(str, e["loc"])), e["msg"]))) for e in exc.errors()
                )
                raise ValueError(f"profiles.{name}: {problems}") from None
        name = data.get("profile", DEFAULT_PROFILE)
        if name == DEFAULT_PROFILE or not isinstance(name, str):
            return data
        if name not in profiles:
            known = ", ".join([DEFAULT_PROFILE, *sorted(profiles)])
            raise ValueError(f"profile '{name}' is not defined (known: {known})")
        return _merge(data, profiles[name])


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied; nested mappings are merged key by key."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


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
