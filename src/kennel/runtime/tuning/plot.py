"""A tuning job as a picture: objective per trial with the best-so-far line, and the objective against
each tuned hyperparameter (categorical values on evenly spaced ticks). Pure matplotlib (Agg)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrialPoint:
    name: str
    status: str
    objective: float | None
    hyperparameters: dict[str, str]


def best_so_far(values: Sequence[float | None], minimize: bool) -> list[float | None]:
    out: list[float | None] = []
    best: float | None = None
    for value in values:
        if value is not None and (best is None or (value < best if minimize else value > best)):
            best = value
        out.append(best)
    return out


def _number(text: str) -> float | None:
    try:
        value = float(json.loads(text)) if text.startswith('"') else float(text)
    except (ValueError, TypeError):
        return None
    return value if math.isfinite(value) else None


def render(path: Path, title: str, trials: Sequence[TrialPoint], metric: str, minimize: bool) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({k for t in trials for k in t.hyperparameters})
    columns = 1 + max(1, len(names))
    figure, axes = plt.subplots(1, columns, figsize=(4.2 * columns, 3.8), squeeze=False)
    ax = axes[0][0]
    xs = list(range(1, len(trials) + 1))
    colours = {"Completed": "tab:blue", "Stopped": "tab:orange", "Failed": "tab:red"}
    for x, trial in zip(xs, trials, strict=True):
        if trial.objective is not None:
            ax.scatter(x, trial.objective, color=colours.get(trial.status, "tab:gray"), zorder=3)
    # The line follows BestTrainingJob, which only counts completed trials.
    best = best_so_far([t.objective if t.status == "Completed" else None for t in trials], minimize)
    ax.step(xs, [b if b is not None else float("nan") for b in best], where="post", color="black",
            label="best so far")  # fmt: skip
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title("objective per trial (orange: stopped early)")
    ax.legend(loc="best")
    for index, name in enumerate(names, start=1):
        ax = axes[0][index]
        points = [(t.hyperparameters.get(name), t.objective) for t in trials if t.objective is not None]
        numeric = [(_number(h), v) for h, v in points if h is not None]
        if numeric and all(h is not None for h, _ in numeric):
            ax.scatter([h for h, _ in numeric], [v for _, v in numeric], color="tab:blue")
            positive = [h for h, _ in numeric if h is not None and h > 0]
            if len(positive) == len(numeric) and max(positive) / min(positive) >= 100:
                ax.set_xscale("log")
        else:
            labels = sorted({h for h, _ in points if h is not None})
            ax.scatter([labels.index(h) for h, _ in points if h is not None],
                       [v for h, v in points if h is not None], color="tab:blue")  # fmt: skip
            ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(name)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} vs {name}")
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
