"""Typed views of ``params.yaml`` (the DVC params file).

The stages load it with :func:`load_params` and name the sections they use in ``require``: such a
section must be complete (every key written out, nested ones too), so an empty or partial
``params.yaml`` is an error naming the missing keys instead of silently training with code defaults.
:func:`committed_params` reads the version in the last commit (``git show HEAD:params.yaml``): deploy
enforces the committed quality gate, not an experiment's overrides in the working tree.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vertex_edge import proc
from vertex_edge.config import validate_model
from vertex_edge.errors import ConfigError, ExternalToolError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _NoneIsEmpty(BaseModel):
    """A section written as ``monitor:`` with nothing under it (YAML null) reads as empty."""

    @model_validator(mode="before")
    @classmethod
    def _none_is_empty(cls, data: Any) -> Any:
        return data or {}


class AugmentParams(_Strict):
    # True: a random horizontal flip per image per step; "alternate": each image mirrored in every
    # other epoch (derandomised flips, vertex_edge.training.layers.AlternatingFlip)
    flip: bool | Literal["alternate"] = True
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
    final_lr: float = Field(default=0.01, ge=0.0, le=1.0)  # the cosine decay ends at this fraction of learning_rate
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
    min_accuracy: float = Field(default=0.9, ge=0.0, le=1.0, description="the quality gate on test accuracy")


class DeployParams(_Strict):
    """How ``deploy-vertex.py`` judges a new model against the one taking traffic (champion/challenger)."""

    max_regression: float = Field(
        default=0.01, ge=0.0, le=1.0,
        description="refuse a model whose test accuracy is more than this below the serving version's",
    )  # fmt: skip


class MinEffect(_Frozen):
    """A statistically significant difference must also be at least this large to count as drift
    (large windows make tiny, harmless differences significant)."""

    classes: float = Field(default=0.05, ge=0, le=1, description="total variation distance of predicted-class shares")
    distribution: float = Field(default=0.05, ge=0, le=1, description="Kolmogorov-Smirnov distance")
    ood_rate: float = Field(default=0.02, ge=0, le=1, description="flagged share above the calibrated rate")
    accuracy_drop: float = Field(default=0.03, ge=0, le=1, description="accuracy below the held-out accuracy")


class OodParams(_Frozen):
    """``monitor.ood``: used at training time (the model's OOD flag is calibrated when it is exported)."""

    fpr: float = Field(default=0.02, gt=0, lt=0.5, description="false-positive rate of the OOD flag on held-out images")


class MonitorParams(_NoneIsEmpty, _Frozen):
    """``params.yaml`` ``monitor:`` (``edge.py monitor``'s thresholds; ``ood`` is set at training)."""

    window: int = Field(default=500, ge=10, description="records compared when neither --last nor --since is given")
    min_records: int = Field(default=200, ge=10, description="fewer records: 'not enough data', no verdict")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="false-alarm rate per window, shared by all checks")
    min_labels: int = Field(default=50, ge=1, description="feedback labels needed before accuracy is checked")
    min_effect: MinEffect = MinEffect()
    ood: OodParams = OodParams()


class Params(_NoneIsEmpty):
    model_config = ConfigDict(extra="allow")  # other sections belong to other stages

    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    deploy: DeployParams = DeployParams()
    monitor: MonitorParams = MonitorParams()


#: the sections a stage may require to be complete (dotted: a nested section), and their models.
#: ``monitor.ood`` is the part of ``monitor`` that training uses; ``edge.py monitor`` fills the
#: rest of that section from the defaults above.
SECTIONS: dict[str, type[BaseModel]] = {
    "train": TrainParams,
    "evaluate": EvaluateParams,
    "deploy": DeployParams,
    "monitor.ood": OodParams,
}


def _section(data: Any, dotted: str) -> Any:
    """``data``'s value at a dotted section name (None where a level is missing)."""
    for key in dotted.split("."):
        data = data.get(key) if isinstance(data, dict) else None
    return data


def missing_keys(model: type[BaseModel], data: Any, prefix: str) -> list[str]:
    """The dotted keys of ``model`` (nested models included) that ``data`` does not set."""
    if not isinstance(data, dict):
        return [prefix]
    missing: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}"
        if name not in data:
            missing.append(key)
            continue
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            missing.extend(missing_keys(sub, data[name], key))
    return missing


def parse_params(text: str, source: str, *, require: Iterable[str] = ()) -> Params:
    """Validate params.yaml's text; every section in ``require`` must set every key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    wanted = list(require)
    if wanted and not data:
        raise ConfigError(
            f"{source} is empty: it must set {', '.join(wanted)}",
            hint="restore it with 'git checkout -- params.yaml' (code defaults are never used silently)",
        )
    missing = [key for section in wanted for key in missing_keys(SECTIONS[section], _section(data, section), section)]
    if missing:
        shown = ", ".join(missing[:12]) + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")
        raise ConfigError(
            f"{source} does not set {shown}",
            hint="write every key out (see the committed params.yaml: 'git show HEAD:params.yaml'); "
            "code defaults are never used silently",
        )
    return validate_model(Params, data, source)


def load_params(path: Path, *, require: Iterable[str] = ()) -> Params:
    """Read and validate ``path``; :class:`ConfigError` naming every bad or missing key."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"params file {path} not found", hint="restore it: 'git checkout -- params.yaml'") from None
    except OSError as exc:
        raise ConfigError(f"cannot read params file {path}: {exc.strerror}") from None
    return parse_params(text, f"params file {path}", require=require)


def committed_params(repo: Path, path: Path, *, require: Iterable[str] = ()) -> tuple[Params, str] | None:
    """``path`` as the last commit has it (``git show HEAD:<path>``) and where it came from, or None
    when ``repo`` is not a git checkout or the file is not committed."""
    try:
        rel = Path(path).resolve().relative_to(Path(repo).resolve()).as_posix()
        commit = proc.run(["git", "rev-parse", "HEAD"], cwd=repo).stdout.decode().strip()
        text = proc.run(["git", "show", f"{commit}:{rel}"], cwd=repo).stdout.decode("utf-8")
    except (ValueError, ExternalToolError):
        return None
    source = f"{rel} at commit {commit[:8]}"
    return parse_params(text, source, require=require), source
