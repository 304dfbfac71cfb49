"""The configuration of one CNN training run, from a mapping, a YAML file or command-line flags.

No torch here: the search engine validates a workload's parameters before any machine starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml
from cherrypick.workloads.cnn.arch import MODELS, Architecture, LayerAnalysis, analyze, architecture

from cherrypick._text import read_text
from cherrypick.errors import UnknownNameError, ValidationError

__all__ = ["IMAGENET_TRAIN_IMAGES", "TrainConfig", "add_config_arguments", "config_from_args"]

#: Images in ImageNet-1k's training set: one epoch of the default synthetic job.
IMAGENET_TRAIN_IMAGES = 1_281_167

_PRECISIONS = ("fp32", "fp16", "bf16")
_DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``batch_size`` is per process (per GPU under DDP).

    ``iterations`` is the length of this run (a short trial); None trains the whole job. The job
    is ``epochs`` passes over ``dataset_size`` samples; a trial projects its runtime from that.
    ``data`` is ``synthetic``, ``jpeg`` (generated, ``images_per_class`` per class) or the path
    of a folder of class sub-folders (on the machine that trains). ``threads`` sets torch's CPU
    threads (0: torch's default). A profiled iteration is every ``sample_every``-th after
    ``warmup``.
    """

    model: str = "resnet18"
    batch_size: int = 64
    iterations: int | None = 50
    warmup: int = 5
    epochs: float = 1.0
    dataset_size: int | None = None
    classes: int = 1000
    image_size: int = 224
    width: float = 1.0
    data: str = "synthetic"
    images_per_class: int = 8
    workers: int = 2
    threads: int = 0
    lr: float = 0.01
    momentum: float = 0.9
    precision: str = "fp32"
    channels_last: bool = False
    device: str = "auto"
    profile: bool = True
    sample_every: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise UnknownNameError("model", self.model, MODELS)
        _choice("precision", self.precision, _PRECISIONS)
        _choice("device", self.device, _DEVICES)
        for name in ("batch_size", "classes", "image_size", "images_per_class", "sample_every"):
            _positive(name, getattr(self, name))
        for name in ("warmup", "workers", "threads", "seed"):
            if getattr(self, name) < 0:
                raise _invalid(name, "must be >= 0")
        _positive_number("epochs", self.epochs)
        _positive_number("width", self.width)
        _positive_number("lr", self.lr)
        if not 0 <= self.momentum < 1:
            raise _invalid("momentum", "must be in [0, 1)")
        if self.dataset_size is not None:
            _positive("dataset_size", self.dataset_size)
        if self.iterations is not None and self.iterations <= self.warmup:
            raise _invalid("iterations", f"must exceed warmup ({self.warmup})")
        self.architecture()  # fails early if the image is too small for the model

    @property
    def data_kind(self) -> str:
        return self.data if self.data in ("synthetic", "jpeg") else "folder"

    def architecture(self) -> Architecture:
        return architecture(
            self.model, num_classes=self.classes, image_size=self.image_size, width=self.width
        )

    def samples_per_epoch(self) -> int | None:
        """Samples in one epoch of the job; None for a folder of unknown size."""
        if self.dataset_size is not None:
            return self.dataset_size
        if self.data_kind == "synthetic":
            return IMAGENET_TRAIN_IMAGES
        if self.data_kind == "jpeg":
            return self.classes * self.images_per_class
        return None

    def layer_costs(self) -> list[LayerAnalysis]:
        """Analytic per-layer costs of one iteration of one process (the loss last)."""
        return analyze(self.architecture(), self.batch_size, self.precision)

    def run_iterations(self, samples_per_epoch: int, world_size: int) -> int:
        """Iterations this run trains: the trial's, or the whole job's."""
        if self.iterations is not None:
            return self.iterations
        return self.warmup + 1 + self.job_iterations(samples_per_epoch, world_size)

    def job_iterations(self, samples_per_epoch: int, world_size: int) -> int:
        """Iterations of the whole job (the last incomplete batch of an epoch is dropped)."""
        per_epoch = max(1, samples_per_epoch // (self.batch_size * world_size))
        return math.ceil(self.epochs * per_epoch)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping (keys as the fields, ``-`` or ``_``); unknown keys are errors."""
        known = {f.name: f for f in fields(cls)}
        clean: dict[str, Any] = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise ValidationError(source, f"unknown key; known: {', '.join(known)}", field=key)
            clean[name] = _coerce(source, name, value, known[name].default)
        try:
            return cls(**clean)
        except ValidationError as exc:
            raise ValidationError(source, exc.message, field=exc.field) from None

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        return cls.from_mapping(_read_yaml(Path(path)), source=str(path))


def _coerce(source: str, name: str, value: Any, default: Any) -> Any:
    """Check a value's type against the field's default (ints are fine where floats are)."""
    if value is None and name in ("iterations", "dataset_size"):
        return None
    kind = type(default) if default is not None else int
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise ValidationError(source, f"expected {kind.__name__}, got {value!r}", field=name)
    return value


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        loaded = yaml.safe_load(read_text(path, "config"))
    except yaml.YAMLError as exc:
        raise ValidationError(str(path), f"not valid YAML: {exc}") from None
    if not isinstance(loaded, Mapping):
        raise ValidationError(str(path), "expected a mapping of settings")
    return loaded


def _invalid(name: str, message: str) -> ValidationError:
    return ValidationError("config", message, field=name)


def _choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise _invalid(name, f"{value!r} is not one of {', '.join(choices)}")


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise _invalid(name, "must be >= 1")


def _positive_number(name: str, value: float) -> None:
    if not value > 0 or math.isinf(value):
        raise _invalid(name, "must be a positive number")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of every :class:`TrainConfig` field; unset flags stay None (file or default)."""
    parser.add_argument("--config", metavar="YAML", help="settings file; flags override it")
    flag_types: dict[str, Any] = {"int": int, "float": float, "str": str}
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
            continue
        kind = flag_types[str(f.type).split(" ")[0]]
        parser.add_argument(flag, type=kind, default=None, help=f"default: {f.default}")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Merge the ``--config`` file (if any) with the flags that were given."""
    values: dict[str, Any] = dict(_read_yaml(Path(args.config))) if args.config else {}
    for f in fields(TrainConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    return TrainConfig.from_mapping(values, source=args.config or "command line")
