"""Classification metrics (per-sample means, never per-batch) and the plots people look at."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def classification_report(logits: torch.Tensor, targets: torch.Tensor, labels: list[str]) -> dict:
    """Accuracy, top-5, loss, per-class accuracy and the confusion matrix for one split."""
    n, num_classes = logits.shape
    if n == 0:
        return {"count": 0}
    logits = logits.float()
    loss = F.cross_entropy(logits, targets, reduction="sum").item() / n
    predictions = logits.argmax(dim=1)
    k = min(5, num_classes)
    topk = logits.topk(k, dim=1).indices
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    confusion.index_put_((targets, predictions), torch.ones(n, dtype=torch.long), accumulate=True)
    support = confusion.sum(dim=1)
    correct = confusion.diag()
    per_class = {
        labels[c]: {
            "accuracy": (correct[c] / support[c]).item() if support[c] else None,
            "support": int(support[c]),
        }
        for c in range(num_classes)
    }
    return {
        "count": n,
        "loss": loss,
        "accuracy": (predictions == targets).float().mean().item(),
        f"top{k}_accuracy": (topk == targets.unsqueeze(1)).any(dim=1).float().mean().item(),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "labels": labels,
    }


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers or in CI
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(confusion: list[list[int]], labels: list[str], path: Path) -> Path:
    plt = _pyplot()
    matrix = np.asarray(confusion, dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    n = len(labels)
    side = min(4 + n * 0.35, 24)
    fig, ax = plt.subplots(figsize=(side, side))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    if n <= 40:  # beyond that, tick labels overlap into noise
        ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
        ax.set_yticks(range(n), labels, fontsize=8)
        if n <= 15:
            for i in range(n):
                for j in range(n):
                    if matrix[i, j]:
                        colour = "white" if normalised[i, j] > 0.5 else "black"
                        ax.text(j, i, int(matrix[i, j]), ha="center", va="center", color=colour, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f"Confusion matrix (accuracy {accuracy:.1%}, {int(matrix.sum())} images)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training_curves(history: list[dict], path: Path) -> Path:
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for split, style in (("train", "-o"), ("valid", "-s")):
        loss_ax.plot(epochs, [h[f"{split}_loss"] for h in history], style, label=split)
        acc_ax.plot(epochs, [h[f"{split}_accuracy"] for h in history], style, label=split)
    best = min(history, key=lambda h: h["valid_loss"])["epoch"] if history else None
    for ax, title in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        if best is not None:
            ax.axvline(best, color="grey", linestyle=":", label=f"best epoch ({best})")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    acc_ax.set_ylim(0, 1.02)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(report: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return path
