"""Train the dog-breed classifier: ``python -m kennel.ml.train`` or ``kennel train``.

Runs alone, under ``torchrun`` (data parallel, gloo on CPU / NCCL on GPU) and as a SageMaker
script-mode entry point. Metric lines (``Validation Loss: 1.2345``) are printed for SageMaker-style
regexes; ``metrics.json``, ``report.json`` and PNG plots go to the output directory; the model
artifact (weights, metadata, serving code) goes to the model directory.
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from . import calibration
from . import distributed as ddp
from .artifact import ArtifactMeta, write_model_dir
from .config import TrainConfig, parse_train_args
from .data import DatasetInfo, decode_split, scan_dataset
from .evaluate import classification_report, plot_confusion_matrix, plot_training_curves, write_report
from .features import compute_features
from .models import Classifier, Freeze, ModelConfig, build_model
from .progress import Bar
from .sources import BatchStats, FileSource, TensorSource, decoded_source
from .transforms import Preprocess

log = logging.getLogger("kennel.train")


@dataclass
class TrainResult:
    history: list[dict]
    best_epoch: int
    stopped_early: bool
    test: dict
    seconds: float
    skipped_images: int
    ranks_in_agreement: bool
    model_dir: Path | None
    extra: dict = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_factor(epoch: int, cfg: TrainConfig) -> float:
    if cfg.scheduler == "none":
        return 1.0
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    if cfg.scheduler == "step":
        return 0.1 ** ((epoch - cfg.warmup_epochs) // max(1, cfg.epochs // 3))
    span = max(1, cfg.epochs - cfg.warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / span))


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


class Trainer:
    def __init__(self, cfg: TrainConfig, placement: ddp.Placement) -> None:
        self.cfg = cfg
        self.placement = placement
        self.device = placement.device
        self.main = placement.is_main
        self.preprocess = Preprocess(image_size=cfg.image_size)
        self.stats = BatchStats()
        self.feature_seconds: float | None = None
        self.console_progress = self.main and not cfg.quiet

    # ----- data -------------------------------------------------------------------------------------
    def load_data(self) -> None:
        cfg, place = self.cfg, self.placement
        # One process per host hashes (and writes the manifest); the others read it afterwards.
        if place.local_rank == 0:
            self.info = scan_dataset(cfg.data_dir)
        ddp.barrier(place)
        if place.local_rank != 0:
            self.info = scan_dataset(cfg.data_dir)
        if "valid" not in self.info.splits:
            raise SystemExit(f"{cfg.data_dir} needs a valid/ split for early stopping")
        self.eval_split = "test" if "test" in self.info.splits else "valid"
        self.sources: dict[str, TensorSource | FileSource] = {}
        if cfg.pipeline == "files" and not cfg.use_feature_cache:
            for name, split in self.info.splits.items():
                self.sources[name] = FileSource(split, self.preprocess, cfg.num_workers)
            return
        decoded = {}
        for name, split in self.info.splits.items():
            if place.local_rank == 0:
                decoded[name] = self._decode(split)
            ddp.barrier(place)
            if place.local_rank != 0:
                decoded[name] = self._decode(split)
        self.decoded = decoded
        self.stats.skipped += sum(d.skipped for d in decoded.values())
        for name, d in decoded.items():
            self.sources[name] = decoded_source(d, self.preprocess, self.device)

    def _decode(self, split):
        return decode_split(
            split,
            self.preprocess.resize_size,
            num_workers=self.cfg.num_workers,
            cache_dir=self.cfg.decoded_cache,
            dataset_hash=self.info.content_hash,
            progress=self.console_progress,
        )

    # ----- model ------------------------------------------------------------------------------------
    def build(self) -> None:
        cfg = self.cfg
        seed_everything(cfg.seed)
        model_cfg = ModelConfig(
            backbone=cfg.backbone,
            num_classes=len(self.info.classes),
            head_hidden=cfg.head_hidden,
            dropout=cfg.dropout,
            freeze=cfg.freeze,
        )
        self.model: Classifier = build_model(model_cfg, pretrained=cfg.pretrained).to(self.device)
        if cfg.channels_last and self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        if cfg.use_feature_cache:
            self._switch_to_features()
            trainable: nn.Module = self.model.head
        else:
            trainable = self.model
        self.step_module: nn.Module = trainable
        if self.placement.distributed:
            self.step_module = DistributedDataParallel(
                trainable, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if cfg.compile:
            self.step_module = torch.compile(self.step_module)
        self.optimizer = build_optimizer(self.model.trainable_parameters(), cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda e: lr_factor(e, cfg))
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def _switch_to_features(self) -> None:
        """Replace image sources by backbone features, computed once (and cached on disk)."""
        started = time.perf_counter()
        for name, decoded in self.decoded.items():
            features = compute_features(
                self.model.backbone,
                decoded,
                self.preprocess,
                self.placement,
                cache_dir=self.cfg.decoded_cache,
                cache_key=self._feature_key(name),
                progress=self.console_progress,
            )
            self.sources[name] = TensorSource(features, decoded.targets.to(features.device))
        self.feature_seconds = time.perf_counter() - started

    def _feature_key(self, split: str) -> str:
        cfg = self.cfg
        weights = "imagenet" if cfg.pretrained else f"random{cfg.seed}"
        return f"{self.info.content_hash[:16]}-{split}-{cfg.backbone}-{weights}-{cfg.image_size}"

    # ----- loops ------------------------------------------------------------------------------------
    def _indices(self, n: int, epoch: int, *, shuffle: bool) -> list[int]:
        if not shuffle:
            return list(range(self.placement.rank, n, self.placement.world_size))
        sampler = DistributedSampler(
            range(n),
            num_replicas=self.placement.world_size,
            rank=self.placement.rank,
            shuffle=True,
            seed=self.cfg.seed,
        )
        sampler.set_epoch(epoch)
        return list(sampler)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and self.cfg.channels_last and self.device.type == "cuda":
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def train_one_epoch(self, epoch: int) -> tuple[float, float]:
        source = self.sources["train"]
        self.step_module.train()
        self.model.train()
        generator = torch.Generator().manual_seed(self.cfg.seed * 1000 + epoch * 7 + self.placement.rank)
        indices = self._indices(len(source), epoch, shuffle=True)
        augment = self.cfg.augment and source_is_images(source)
        total_loss = correct = count = 0.0
        progress = Bar(
            self.console_progress, f"epoch {epoch + 1}/{self.cfg.epochs}", len(indices), show_loss=True
        )
        with progress:
            for x, y in source.batches(
                indices,
                self.cfg.batch_size,
                self.device,
                augment=augment,
                generator=generator,
                stats=self.stats,
            ):
                with self._autocast():
                    logits = self.step_module(self._prepare(x))
                    loss = self.loss_fn(logits.float(), y)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                n = y.shape[0]
                total_loss += loss.detach().item() * n
                correct += (logits.detach().argmax(1) == y).sum().item()
                count += n
                progress.advance(n, loss.detach().item())
        ddp.broadcast_buffers(self.model, self.placement)
        total_loss, correct, count = ddp.all_reduce_sum([total_loss, correct, count], self.placement)
        return total_loss / max(count, 1), correct / max(count, 1)

    @torch.inference_mode()
    def predict(self, split: str, *, sharded: bool) -> tuple[torch.Tensor, torch.Tensor]:
        source = self.sources[split]
        module = self.model.head if self.cfg.use_feature_cache else self.model
        module.eval()
        indices = self._indices(len(source), 0, shuffle=False) if sharded else list(range(len(source)))
        outputs, targets = [], []
        for x, y in source.batches(
            indices,
            max(self.cfg.batch_size, 64),
            self.device,
            augment=False,
            generator=torch.Generator(),
            stats=BatchStats(),
        ):
            with self._autocast():
                outputs.append(module(self._prepare(x)).float().cpu())
            targets.append(y.cpu())
        if not outputs:
            return torch.empty(0, len(self.info.classes)), torch.empty(0, dtype=torch.long)
        return torch.cat(outputs), torch.cat(targets)

    def evaluate(self, split: str) -> tuple[float, float]:
        logits, targets = self.predict(split, sharded=True)
        loss = F.cross_entropy(logits, targets, reduction="sum").item() if len(targets) else 0.0
        correct = (logits.argmax(1) == targets).sum().item() if len(targets) else 0
        loss, correct, count = ddp.all_reduce_sum([loss, correct, len(targets)], self.placement)
        return loss / max(count, 1), correct / max(count, 1)

    # ----- checkpoints ------------------------------------------------------------------------------
    def checkpoint_path(self) -> Path:
        return self.cfg.checkpoints / "last.pt"

    def save_checkpoint(self, state: dict) -> None:
        path = self.checkpoint_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    def load_checkpoint(self) -> dict | None:
        path = self.checkpoint_path()
        if not path.is_file():
            return None
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("config", {}).get("backbone") != self.cfg.backbone:
            raise SystemExit(f"{path} was written for another backbone; refusing to resume from it")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        return state

    # ----- the whole run ----------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        cfg = self.cfg
        started = time.perf_counter()
        history: list[dict] = []
        best_loss, best_epoch, best_state, bad_epochs, start_epoch = math.inf, -1, None, 0, 0
        if cfg.resume and (state := self.load_checkpoint()) is not None:
            history, best_loss, best_epoch = state["history"], state["best_loss"], state["best_epoch"]
            best_state, bad_epochs, start_epoch = state["best_state"], state["bad_epochs"], state["epoch"] + 1
            self._say(f"Resuming from {self.checkpoint_path()} at epoch {start_epoch + 1}")
        stopped_early = bool(history) and cfg.patience > 0 and bad_epochs >= cfg.patience
        for epoch in range(start_epoch, cfg.epochs):
            if stopped_early:
                break
            epoch_started = time.perf_counter()
            train_loss, train_acc = self.train_one_epoch(epoch)
            valid_loss, valid_acc = self.evaluate("valid")
            self.scheduler.step()
            record = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "valid_loss": valid_loss,
                "valid_accuracy": valid_acc,
                "learning_rate": self.optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - epoch_started,
            }
            history.append(record)
            if valid_loss < best_loss - cfg.min_delta:
                best_loss, best_epoch, bad_epochs = valid_loss, epoch + 1, 0
                best_state = copy.deepcopy(self.model.state_dict())
            else:
                bad_epochs += 1
            self._emit_epoch(record)
            if self.main:
                self.save_checkpoint(
                    {
                        "epoch": epoch,
                        "model": self.model.state_dict(),
                        "optimizer": self.optimizer.state_dict(),
                        "scheduler": self.scheduler.state_dict(),
                        "rng": torch.get_rng_state(),
                        "history": history,
                        "best_loss": best_loss,
                        "best_epoch": best_epoch,
                        "best_state": best_state,
                        "bad_epochs": bad_epochs,
                        "config": cfg.to_dict(),
                    }
                )
                self._write_metrics(history, best_epoch)
            if cfg.patience > 0 and bad_epochs >= cfg.patience:
                stopped_early = True
                self._say(f"Early stopping: validation loss has not improved for {bad_epochs} epochs")
        if best_state is not None:
            self.model.load_state_dict(best_state)  # best-checkpoint restore
        agreement = ddp.all_gather_objects(ddp.parameter_digest(self.model), self.placement)
        in_agreement = len(set(agreement)) == 1
        test: dict = {}
        model_dir = None
        if self.main:
            logits, targets = self.predict(self.eval_split, sharded=False)
            test = classification_report(logits, targets, self.info.labels)
            self._emit_test(test)
            model_dir = self._write_outputs(history, best_epoch, stopped_early, test, in_agreement, started)
        ddp.barrier(self.placement)
        return TrainResult(
            history,
            best_epoch,
            stopped_early,
            test,
            time.perf_counter() - started,
            self.stats.skipped,
            in_agreement,
            model_dir,
        )

    # ----- output -----------------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        if self.main:
            print(text, flush=True)

    def _emit_epoch(self, r: dict) -> None:
        self._say(
            f"Epoch {r['epoch']}/{self.cfg.epochs}\n"
            f"Train Loss: {r['train_loss']:.4f}\nTrain Accuracy: {r['train_accuracy']:.4f}\n"
            f"Validation Loss: {r['valid_loss']:.4f}\nValidation Accuracy: {r['valid_accuracy']:.4f}\n"
            f"Epoch Time: {r['seconds']:.2f}"
        )

    def _emit_test(self, test: dict) -> None:
        top5 = next((v for k, v in test.items() if k.startswith("top") and k.endswith("_accuracy")), 0.0)
        self._say(
            f"Testing Loss: {test.get('loss', 0.0):.4f}\nTesting Accuracy: {test.get('accuracy', 0.0):.4f}\n"
            f"Testing Top-5 Accuracy: {top5:.4f}"
        )

    def _write_metrics(self, history: list[dict], best_epoch: int, **extra) -> None:
        out = self.cfg.output_dir
        out.mkdir(parents=True, exist_ok=True)
        payload = {"history": history, "best_epoch": best_epoch, **extra}
        (out / "metrics.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")

    def _writes_model(self) -> bool:
        cfg = self.cfg
        # Without torchrun, each SageMaker host trains alone; only the first host's model is the job's.
        return self.placement.distributed or not cfg.hosts or cfg.current_host in ("", cfg.hosts[0])

    def _write_outputs(self, history, best_epoch, stopped_early, test, in_agreement, started) -> Path | None:
        cfg, out = self.cfg, self.cfg.output_dir
        summary = {
            "best_epoch": best_epoch,
            "stopped_early": stopped_early,
            "test_split": self.eval_split,
            "test_loss": test.get("loss"),
            "test_accuracy": test.get("accuracy"),
            "test_top5_accuracy": test.get(
                "top5_accuracy", test.get(f"top{len(self.info.classes)}_accuracy")
            ),
            "skipped_images": self.stats.skipped,
            "world_size": self.placement.world_size,
            "ranks_in_agreement": in_agreement,
            "seconds": time.perf_counter() - started,
            "feature_seconds": self.feature_seconds,
        }
        self._write_metrics(history, best_epoch, summary=summary)
        write_report(
            {"summary": summary, "config": cfg.to_dict(), "dataset": self.info.describe(), "test": test},
            out / "report.json",
        )
        if history:
            plot_training_curves(history, out / "training_curves.png")
        if test.get("count"):
            plot_confusion_matrix(test["confusion_matrix"], self.info.labels, out / "confusion_matrix.png")
        if not self._writes_model():
            self._say(f"Host {cfg.current_host} is not the first host; its model is not saved")
            return None
        meta = ArtifactMeta(
            model=self.model.config,
            preprocess=self.preprocess,
            classes=self.info.classes,
            labels=self.info.labels,
            metrics={k: v for k, v in summary.items() if k not in ("seconds",)},
            dataset=self.info.describe(),
        )
        model_dir = write_model_dir(cfg.model_dir, self.model.cpu(), meta)
        # A few dozen validation images travel with the weights: the serving precision gate's proof.
        split = self.info.splits.get("valid") or self.info.splits.get(self.eval_split)
        if split is not None and split.samples:
            calibration.write_from_files(model_dir, split.samples, self.preprocess)
        return model_dir


def source_is_images(source) -> bool:
    return isinstance(source, FileSource) or getattr(source, "preprocess", None) is not None


def run(cfg: TrainConfig) -> TrainResult:
    placement = ddp.init_placement(cfg.device)
    trainer: Trainer | None = None
    try:
        trainer = Trainer(cfg, placement)
        trainer.load_data()
        trainer.build()
        return trainer.fit()
    finally:
        # The DistributedDataParallel wrapper goes before the process group: with gloo, torch 2.14
        # aborts at interpreter exit ("terminate called without an active exception") in about half
        # the runs on a loaded machine when a DDP module outlives destroy_process_group.
        trainer = None
        gc.collect()
        ddp.shutdown(placement)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    cfg = parse_train_args(argv)
    if cfg.unknown_args:
        log.warning("ignoring unknown arguments: %s", " ".join(cfg.unknown_args))
    result = run(cfg)
    if result.model_dir is not None:
        print(f"Model saved to {result.model_dir}", flush=True)
    return 0


__all__ = ["DatasetInfo", "Freeze", "TrainConfig", "TrainResult", "Trainer", "main", "run"]

if __name__ == "__main__":
    ddp.leave(main())
