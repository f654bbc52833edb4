"""The demo's tuning step, as the seeds did it: a SageMaker hyperparameter tuning job (Bayesian, a few
short trials one at a time, minimising "Validation Loss") over the learning rate and the batch size.
Every trial is a real training job of Kennel's trainer; the best trial's values go on to the training
jobs. Shown as it runs, then as a table of the trials (best first) and a PNG of the search.

Only boto3 against the local cloud, like ``kennel.demo.training``; what is tuned, and how short a trial
is, comes from the ``Recipe`` (``kennel.demo.recipe``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich import box
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from kennel.demo import training
from kennel.demo.loadtest import Clients
from kennel.demo.recipe import Recipe

NAME = "dog-breeds-hpo"  # AWS allows 32 characters; trials are named <NAME>-00N-<8 hex>
SEED = 7  # RandomSeed: the same first proposals on every run, so the demo's timing is repeatable
TERMINAL = ("Completed", "Failed", "Stopped")


@dataclass(frozen=True)
class Trial:
    name: str
    status: str
    tuned: dict[str, str]  # as the trainer reads them (categorical values unquoted)
    objective: float | None  # the last value of the objective metric the trial printed
    seconds: float | None


def plain(value: str) -> str:
    """A tuned value as the trainer reads it: the SDK sends categorical values JSON-quoted ('"32"')."""
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) else value


def short(value: str) -> str:
    """A tuned value for people: a continuous one to 3 significant digits (the search sends 17)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() and "." not in value else f"{number:.3g}"


def trial_of(summary: dict) -> Trial:
    """One TrainingJobSummaries item of ListTrainingJobsForHyperParameterTuningJob."""
    start, end = summary.get("TrainingStartTime"), summary.get("TrainingEndTime")
    timed = isinstance(start, datetime) and isinstance(end, datetime)
    seconds = (end - start).total_seconds() if timed else None
    final = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    return Trial(
        name=summary["TrainingJobName"],
        status=summary["TrainingJobStatus"],
        tuned={k: plain(v) for k, v in summary.get("TunedHyperParameters", {}).items()},
        objective=final.get("Value"),
        seconds=seconds,
    )


def ranked(trials: Iterable[Trial], *, minimize: bool = True) -> list[Trial]:
    """Best first: completed trials by objective, then the others (those with a value before those
    without), ties and the valueless in name order, which is the order they were started in."""

    def key(trial: Trial) -> tuple:
        value = trial.objective
        scored = value if value is None or minimize else -value
        return (trial.status != "Completed", value is None, scored if scored is not None else 0.0, trial.name)

    return sorted(trials, key=key)


def rows(trials: Sequence[Trial], names: Sequence[str], best: str | None, job: str = "") -> list[list[str]]:
    """The table's rows, in the order given: rank, trial (★ the best), status, tuned values,
    objective, seconds. Trial names lose the tuning job's name in front (``job``), which the table's
    title carries, so the table fits an 80-column terminal."""
    out = []
    for rank, trial in enumerate(trials, start=1):
        label = trial.name.removeprefix(f"{job}-") if job else trial.name
        out.append([
            str(rank),
            label + (" ★" if trial.name == best else ""),
            trial.status,
            *(short(trial.tuned.get(name, "")) for name in names),
            "-" if trial.objective is None else f"{trial.objective:.4f}",
            "-" if trial.seconds is None else f"{trial.seconds:.0f}",
        ])  # fmt: skip
    return out


def request(name: str, recipe: Recipe, channel: str, source: dict[str, str]) -> dict:
    """CreateHyperParameterTuningJob's parameters: the recipe's search over the demo's training job."""
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "RandomSeed": SEED,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": recipe.objective},
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": recipe.max_trials,
                "MaxParallelTrainingJobs": recipe.parallel_trials,
            },
            "ParameterRanges": recipe.parameter_ranges(),
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {**training.encode(recipe.trial_hyperparameters()), **source},
            "AlgorithmSpecification": training.algorithm(),
            "RoleArn": f"arn:aws:iam::{training.ACCOUNT}:role/{training.ROLE}",
            "InputDataConfig": training.channel_config(channel),
            "OutputDataConfig": {"S3OutputPath": f"s3://{training.BUCKET}/{name}/"},
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        },
    }


def _table(title: str, names: Sequence[str], objective: str, cells: list[list[str]]) -> Table:
    # Light borders and unwrapped cells keep it readable in 80 columns; only the objective's header,
    # the longest, may wrap.
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for header in ("#", "trial", "status", *names, objective, "seconds"):
        number = header in ("#", objective, "seconds")
        table.add_column(header, justify="right" if number else "left", no_wrap=header != objective,
                         min_width=6 if header == objective else None)  # fmt: skip
    for row in cells:
        table.add_row(*row)
    return table


def _summaries(sm, name: str) -> list[dict]:
    return sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, MaxResults=100, SortBy="CreationTime", SortOrder="Ascending"
    )["TrainingJobSummaries"]


def _line(index: int, trial: Trial, objective: str) -> str:
    values = ", ".join(f"{k} {short(v)}" for k, v in sorted(trial.tuned.items()))
    result = f"{objective} {trial.objective:.4f}" if trial.objective is not None else "no objective"
    took = f" in {trial.seconds:.0f} s" if trial.seconds is not None else ""
    return f"  trial {index} {trial.name}: {values} → {trial.status}, {result}{took}"


def _follow(clients: Clients, name: str, recipe: Recipe, console: Console) -> tuple[dict, list[Trial]]:
    """Poll the tuning job until it ends: a progress line for the running trial, a line per finished one."""
    sm = clients("sagemaker")
    printed: set[str] = set()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(name)
        while True:
            job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            trials = [trial_of(s) for s in _summaries(sm, name)]
            for index, trial in enumerate(trials, start=1):
                if trial.status in TERMINAL and trial.name not in printed:
                    printed.add(trial.name)
                    progress.console.print(_line(index, trial, recipe.objective), highlight=False)
            running = [(i, t) for i, t in enumerate(trials, start=1) if t.status not in TERMINAL]
            state = job["HyperParameterTuningJobStatus"]
            if running:
                index, trial = running[0]
                secondary = sm.describe_training_job(TrainingJobName=trial.name)["SecondaryStatus"]
                state = f"trial {index}/{recipe.max_trials} ({trial.name}): {secondary}"
            progress.update(task, description=f"tuning job {name}: {state}")
            if job["HyperParameterTuningJobStatus"] in TERMINAL:
                return job, trials
            time.sleep(1.0)


def tune(clients: Clients, channel: str, recipe: Recipe, console: Console, output: Path, *,
         name: str = NAME) -> dict[str, str]:  # fmt: skip
    """Run the tuning job to its end; print the trials, plot them into ``output``/tuning.png, and
    return the best trial's tuned hyperparameters (as the trainer reads them)."""
    from kennel.runtime.tuning.plot import TrialPoint, render

    sm = clients("sagemaker")
    started = time.time()
    source = training.upload_source(clients, name)
    sm.create_hyper_parameter_tuning_job(**request(name, recipe, channel, source))
    space = ", ".join(f"{r['Name']}" for group in recipe.parameter_ranges().values() for r in group)
    console.print(
        f"{name}: Bayesian, {recipe.max_trials} trials ({recipe.parallel_trials} at a time), "
        f"minimising {recipe.objective} over {space}; trials train with "
        + ", ".join(f"{k} {v}" for k, v in recipe.trial.items())
    )
    job, trials = _follow(clients, name, recipe, console)
    names = sorted({k for t in trials for k in t.tuned})
    best_name = (job.get("BestTrainingJob") or {}).get("TrainingJobName")
    console.print(_table(f"{name}: trials, best first", names, recipe.objective,
                         rows(ranked(trials), names, best_name, job=name)))  # fmt: skip
    points = [TrialPoint(t.name, t.status, t.objective, t.tuned) for t in trials]  # in the order run
    plot = render(output / "tuning.png", f"{name} (Bayesian)", points, recipe.objective, True)
    status = job["HyperParameterTuningJobStatus"]
    console.print(f"{name}: {status} in {time.time() - started:.0f} s; plot: {plot}")
    if status != "Completed" or not best_name:
        raise RuntimeError(
            f"tuning job {name} ended {status} without a best trial: {job.get('FailureReason')}"
        )
    best = {k: plain(v) for k, v in job["BestTrainingJob"]["TunedHyperParameters"].items()}
    console.print("best hyperparameters: " + ", ".join(f"{k} {short(v)}" for k, v in sorted(best.items())))
    return best
