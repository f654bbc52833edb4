"""Training configuration and its SageMaker script-mode command line.

Defaults come from the environment SageMaker gives a training container (SM_CHANNEL_TRAINING,
SM_MODEL_DIR, SM_OUTPUT_DATA_DIR, SM_HPS, SM_HOSTS, SM_CURRENT_HOST), hyperparameters arrive as
``--name value``, and the seeds' names (``--learning_rate``, ``--batch_size``, ``--epochs``) work
beside Kennel's own dashed ones.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .models import BACKBONES, Freeze


@dataclass(frozen=True)
class TrainConfig:
    data_dir: Path = Path("data")
    model_dir: Path = Path("runs/model")
    output_dir: Path = Path("runs/output")
    checkpoint_dir: Path | None = None  # default: <output_dir>/checkpoints
    cache_dir: Path | None = None  # decoded-image cache; default: <output_dir>/cache
    backbone: str = "resnet50"
    pretrained: bool = False
    freeze: Freeze = Freeze.BACKBONE
    head_hidden: tuple[int, ...] = (128,)
    dropout: float = 0.0
    image_size: int = 224
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    optimizer: str = "adamw"
    momentum: float = 0.9
    scheduler: str = "cosine"
    warmup_epochs: int = 0
    patience: int = 5
    min_delta: float = 0.0
    augment: bool = True
    pipeline: str = "cache"  # "cache": decode once into uint8 tensors; "files": decode every epoch
    cache_features: str = "auto"  # auto: on when the backbone is frozen
    device: str = "auto"
    compile: bool = False
    channels_last: bool = True
    num_workers: int = 2
    seed: int = 42
    resume: bool = False
    quiet: bool = False
    hosts: tuple[str, ...] = ()
    current_host: str = ""
    unknown_args: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        problems = []
        if self.backbone not in BACKBONES:
            problems.append(f"backbone must be one of {', '.join(BACKBONES)}")
        if self.epochs < 1:
            problems.append("epochs must be >= 1")
        if self.batch_size < 1:
            problems.append("batch_size must be >= 1")
        if not self.learning_rate > 0:
            problems.append("learning_rate must be > 0")
        if not 0 <= self.label_smoothing < 1:
            problems.append("label_smoothing must be in [0, 1)")
        if self.optimizer not in ("adamw", "adam", "sgd"):
            problems.append("optimizer must be adamw, adam or sgd")
        if self.scheduler not in ("cosine", "step", "none"):
            problems.append("scheduler must be cosine, step or none")
        if self.pipeline not in ("cache", "files"):
            problems.append("pipeline must be cache or files")
        if self.cache_features not in ("auto", "on", "off"):
            problems.append("cache_features must be auto, on or off")
        if self.cache_features == "on" and Freeze(self.freeze) is not Freeze.BACKBONE:
            problems.append(
                "cache_features=on needs freeze=backbone (features change while the backbone trains)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        object.__setattr__(self, "freeze", Freeze(self.freeze))

    @property
    def use_feature_cache(self) -> bool:
        return self.cache_features == "on" or (
            self.cache_features == "auto" and self.freeze is Freeze.BACKBONE
        )

    @property
    def checkpoints(self) -> Path:
        return self.checkpoint_dir or self.output_dir / "checkpoints"

    @property
    def decoded_cache(self) -> Path:
        return self.cache_dir or self.output_dir / "cache"

    def to_dict(self) -> dict:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
            elif isinstance(value, tuple):
                data[key] = list(value)
        data["freeze"] = str(self.freeze)
        return data


def _bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def _ints(text: str | list) -> tuple[int, ...]:
    if isinstance(text, list):
        return tuple(int(v) for v in text)
    text = str(text).strip().strip("[]")
    return tuple(int(v) for v in text.replace(",", " ").split()) if text else ()


def _sm_json(env: Mapping[str, str], name: str, default):
    try:
        return json.loads(env[name]) if name in env else default
    except json.JSONDecodeError:
        return default


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """All names accept both ``--snake_case`` (the seeds, SageMaker) and ``--dash-case`` (Kennel)."""
    parser = argparse.ArgumentParser(prog="kennel train", description="Train the dog-breed classifier.")

    def add(name: str, *aliases: str, **kwargs) -> None:
        flags = {f"--{name.replace('_', '-')}", f"--{name}", *aliases}
        parser.add_argument(*sorted(flags), dest=name, **kwargs)

    channel = env.get("SM_CHANNEL_TRAINING") or env.get("SM_CHANNEL_TRAIN") or "data"
    add("data_dir", "--data", help="ImageFolder root with train/ valid/ test/", default=channel)
    add("model_dir", help="where the model artifact goes", default=env.get("SM_MODEL_DIR", "runs/model"))
    add(
        "output_dir",
        "--output-data-dir",
        "--output_data_dir",
        default=env.get("SM_OUTPUT_DATA_DIR", "runs/output"),
    )
    add("checkpoint_dir", default=None)
    add("cache_dir", default=None)
    add("backbone", choices=sorted(BACKBONES), default="resnet50")
    add("pretrained", type=_bool, nargs="?", const=True, default=False)
    add("freeze", choices=[f.value for f in Freeze], default="backbone")
    add("head_hidden", type=_ints, default=(128,), help="hidden widths of the head, e.g. 128 or 256,128")
    add("dropout", type=float, default=0.0)
    add("image_size", type=int, default=224)
    add("epochs", type=int, default=10)
    add("batch_size", type=int, default=64)
    add("learning_rate", "--lr", type=float, default=1e-3)
    add("weight_decay", type=float, default=1e-4)
    add("label_smoothing", type=float, default=0.0)
    add("optimizer", choices=["adamw", "adam", "sgd"], default="adamw")
    add("momentum", type=float, default=0.9)
    add("scheduler", choices=["cosine", "step", "none"], default="cosine")
    add("warmup_epochs", type=int, default=0)
    add("patience", type=int, default=5, help="early-stopping patience in epochs (0 disables)")
    add("min_delta", type=float, default=0.0)
    add("augment", type=_bool, nargs="?", const=True, default=True)
    add("pipeline", choices=["cache", "files"], default="cache")
    add("cache_features", choices=["auto", "on", "off"], default="auto")
    add("device", default="auto")
    add("compile", type=_bool, nargs="?", const=True, default=False)
    add("channels_last", type=_bool, nargs="?", const=True, default=True)
    add("num_workers", type=int, default=min(4, os.cpu_count() or 1))
    add("seed", type=int, default=42)
    add("resume", type=_bool, nargs="?", const=True, default=False)
    add("quiet", type=_bool, nargs="?", const=True, default=False)
    return parser


def parse_train_args(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> TrainConfig:
    env = os.environ if env is None else env
    parser = build_parser(env)
    # SM_HPS holds the job's hyperparameters; explicit command-line flags still win over it.
    hps = _sm_json(env, "SM_HPS", {})
    known_dests = {a.dest for a in parser._actions}
    parser.set_defaults(
        **{k.replace("-", "_"): v for k, v in hps.items() if k.replace("-", "_") in known_dests}
    )
    args, unknown = parser.parse_known_args(list(argv) if argv is not None else None)
    values = vars(args)
    values["head_hidden"] = (
        _ints(values["head_hidden"])
        if not isinstance(values["head_hidden"], tuple)
        else values["head_hidden"]
    )
    for key in ("pretrained", "augment", "compile", "channels_last", "resume", "quiet"):
        values[key] = _bool(values[key])
    for key in ("data_dir", "model_dir", "output_dir", "checkpoint_dir", "cache_dir"):
        values[key] = Path(values[key]) if values[key] else None
    for key in ("image_size", "epochs", "batch_size", "warmup_epochs", "patience", "num_workers", "seed"):
        values[key] = int(values[key])
    for key in ("dropout", "learning_rate", "weight_decay", "label_smoothing", "momentum", "min_delta"):
        values[key] = float(values[key])
    hosts = tuple(_sm_json(env, "SM_HOSTS", []))
    return TrainConfig(
        **values,
        hosts=hosts,
        current_host=env.get("SM_CURRENT_HOST", ""),
        unknown_args=tuple(unknown),
    )
