"""``kennel tuning`` — hyperparameter tuning jobs of the running local cloud, through its public API
(boto3 as the admin user): list them, and describe one as a table of trials plus a PNG."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from kennel.jobs_cli import StateDir, _client

tuning_app = typer.Typer(help="SageMaker hyperparameter tuning jobs of the running local cloud.",
                         no_args_is_help=True)  # fmt: skip
console = Console()


def _trials(sm, name: str) -> list[dict]:
    found, token = [], None
    for _ in range(100):  # at most 10,000 trials, AWS's own ceiling for a Random search
        page = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, MaxResults=100, SortBy="CreationTime", SortOrder="Ascending",
            **({"NextToken": token} if token else {}),
        )  # fmt: skip
        found += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if not token:
            break
    return found


def _seconds(item: dict) -> str:
    start, end = item.get("TrainingStartTime"), item.get("TrainingEndTime")
    if isinstance(start, datetime) and isinstance(end, datetime):
        return f"{(end - start).total_seconds():.1f}"
    return "-"


@tuning_app.command("list")
def list_tuning(state_dir: Path | None = StateDir) -> None:
    """Tuning jobs, newest first."""
    sm = _client(state_dir, "sagemaker")
    jobs = sm.list_hyper_parameter_tuning_jobs(MaxResults=100, SortBy="CreationTime", SortOrder="Descending")
    table = Table("name", "status", "strategy", "completed", "running", "failed/stopped")
    for job in jobs["HyperParameterTuningJobSummaries"]:
        counts = job["TrainingJobStatusCounters"]
        table.add_row(
            job["HyperParameterTuningJobName"], job["HyperParameterTuningJobStatus"], job["Strategy"],
            str(counts["Completed"]), str(counts["InProgress"]),
            str(counts["NonRetryableError"] + counts["RetryableError"] + counts["Stopped"]),
        )  # fmt: skip
    console.print(table)


@tuning_app.command("describe")
def describe(
    name: str = typer.Argument(..., help="the tuning job's name"),
    png: Path | None = typer.Option(None, help="where the PNG goes (default: ./<name>-tuning.png)"),
    state_dir: Path | None = StateDir,
) -> None:
    """The trials as a table (hyperparameters, objective, status, time) and a PNG of the search."""
    from kennel.runtime.tuning.plot import TrialPoint, render

    sm = _client(state_dir, "sagemaker")
    job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    config = job["HyperParameterTuningJobConfig"]
    objective = (
        config.get("HyperParameterTuningJobObjective")
        or (job["TrainingJobDefinitions"][0]["TuningObjective"])
    )
    minimize = objective["Type"] == "Minimize"
    trials = _trials(sm, name)
    best = (job.get("BestTrainingJob") or {}).get("TrainingJobName")
    names = sorted({k for t in trials for k in t["TunedHyperParameters"]})
    counts = job["TrainingJobStatusCounters"]
    console.print(
        f"[bold]{name}[/bold]  {job['HyperParameterTuningJobStatus']}  {config['Strategy']}  "
        f"objective: {objective['Type']} {objective['MetricName']}  "
        f"trials: {counts['Completed']} completed, {counts['InProgress']} running, "
        f"{counts['Stopped']} stopped, "
        f"{counts['NonRetryableError'] + counts['RetryableError']} failed"
    )
    table = Table("#", "trial", "status", objective["MetricName"], *names, "seconds")
    points = []
    for index, item in enumerate(trials, start=1):
        value = (item.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")
        marker = " ★" if item["TrainingJobName"] == best else ""
        table.add_row(
            str(index), item["TrainingJobName"] + marker, item["TrainingJobStatus"],
            "-" if value is None else f"{value:.6g}",
            *(item["TunedHyperParameters"].get(n, "") for n in names), _seconds(item),
        )  # fmt: skip
        points.append(TrialPoint(item["TrainingJobName"], item["TrainingJobStatus"], value,
                                 item["TunedHyperParameters"]))  # fmt: skip
    console.print(table)
    if job.get("FailureReason"):
        console.print(f"[red]{job['FailureReason']}[/red]")
    path = render(png or Path(f"{name}-tuning.png"), f"{name} ({config['Strategy']})", points,
                  objective["MetricName"], minimize)  # fmt: skip
    console.print(f"plot: {path}")
