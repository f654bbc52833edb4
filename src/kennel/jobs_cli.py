"""``kennel jobs`` — training jobs of the running local cloud, through its public API (boto3 as the
admin user, like any client): list, describe (with live progress), logs (with follow), stop."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

jobs_app = typer.Typer(help="SageMaker training jobs of the running local cloud.", no_args_is_help=True)
console = Console()
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TERMINAL = {"Completed", "Failed", "Stopped"}
StateDir = typer.Option(None, "--state-dir", envvar="KENNEL_STATE_DIR", help="Kennel's state directory")


def _client(state_dir: Path | None, service: str):
    import boto3

    from kennel.cloud import server
    from kennel.cloud.cloudstate import admin_credentials
    from kennel.settings import Settings

    settings = Settings.from_env(state_dir=state_dir)
    running = server.read_running(settings.state_dir)
    creds = admin_credentials(settings)
    if running is None or creds is None:
        console.print(f"Kennel is not running (state in {settings.state_dir}); start it with `kennel up`.")
        raise typer.Exit(1)
    return boto3.session.Session().client(
        service,
        endpoint_url=f"http://127.0.0.1:{running.port}",
        region_name=settings.region,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
    )


def _when(value) -> str:
    return value.strftime("%H:%M:%S") if isinstance(value, datetime) else "-"


@jobs_app.command("list")
def list_jobs(
    state_dir: Path | None = StateDir,
    status: str | None = typer.Option(None, help="only jobs in this status (InProgress, Completed, ...)"),
    limit: int = typer.Option(50, help="at most this many, newest first"),
) -> None:
    """Training jobs, newest first."""
    sm = _client(state_dir, "sagemaker")
    found, token = [], None
    while len(found) < limit:
        page = sm.list_training_jobs(
            MaxResults=min(100, limit - len(found)),
            **({"StatusEquals": status} if status else {}),
            **({"NextToken": token} if token else {}),
        )
        found += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if not token:
            break
    table = Table(title=f"training jobs ({len(found)})")
    for column in ("name", "status", "secondary", "created", "ended"):
        table.add_column(column)
    for job in found:
        table.add_row(
            job["TrainingJobName"], job["TrainingJobStatus"], job["SecondaryStatus"],
            _when(job["CreationTime"]), _when(job.get("TrainingEndTime")),
        )  # fmt: skip
    console.print(table)


def _show(job: dict) -> None:
    console.print(
        f"[bold]{job['TrainingJobName']}[/bold]  {job['TrainingJobStatus']} ({job['SecondaryStatus']})"
    )
    for step in job.get("SecondaryStatusTransitions", []):
        console.print(f"  {_when(step['StartTime'])}  {step['Status']:<12} {step.get('StatusMessage', '')}")
    console.print(
        f"  hosts: {job['ResourceConfig']['InstanceCount']} × {job['ResourceConfig']['InstanceType']}"
    )
    console.print(f"  model: {job['ModelArtifacts']['S3ModelArtifacts']}")
    for metric in job.get("FinalMetricDataList", []):
        console.print(f"  metric {metric['MetricName']} = {metric['Value']:g}")
    for status in job.get("DebugRuleEvaluationStatuses", []) + job.get("ProfilerRuleEvaluationStatuses", []):
        console.print(f"  rule {status['RuleConfigurationName']}: {status['RuleEvaluationStatus']}")
    if job.get("FailureReason"):
        console.print(f"  [red]{job['FailureReason']}[/red]")


@jobs_app.command("describe")
def describe(
    name: str,
    state_dir: Path | None = StateDir,
    wait: bool = typer.Option(False, "--wait", help="show progress until the job ends"),
    timeout_s: float = typer.Option(86400, help="give up waiting after this long"),
) -> None:
    """One job: statuses with their messages, metrics, rules, the model's S3 URI."""
    sm = _client(state_dir, "sagemaker")
    job = sm.describe_training_job(TrainingJobName=name)
    if wait and job["TrainingJobStatus"] not in TERMINAL:
        deadline = time.monotonic() + timeout_s
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(name)
            while job["TrainingJobStatus"] not in TERMINAL and time.monotonic() < deadline:
                progress.update(task, description=f"{name}: {job['SecondaryStatus']}")
                time.sleep(0.5)
                job = sm.describe_training_job(TrainingJobName=name)
    _show(job)
    if job["TrainingJobStatus"] == "Failed":
        raise typer.Exit(1)


@jobs_app.command("logs")
def logs(
    name: str,
    state_dir: Path | None = StateDir,
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing until the job ends"),
) -> None:
    """Every host's log lines, in time order (CloudWatch Logs /aws/sagemaker/TrainingJobs)."""
    client, sm = _client(state_dir, "logs"), _client(state_dir, "sagemaker")
    seen: set[str] = set()
    after = 0
    while True:
        done = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] in TERMINAL
        token = None
        try:
            while True:
                page = client.filter_log_events(
                    logGroupName=LOG_GROUP, logStreamNamePrefix=f"{name}/", startTime=after,
                    **({"nextToken": token} if token else {}),
                )  # fmt: skip
                for event in page["events"]:
                    if event["eventId"] not in seen:
                        seen.add(event["eventId"])
                        host = event["logStreamName"].split("/", 1)[1].rsplit("-", 1)[0]
                        console.print(Text.assemble((host, "dim"), " ", event["message"]), highlight=False)
                        after = max(after, event["timestamp"])
                token = page.get("nextToken")
                if not token:
                    break
        except client.exceptions.ResourceNotFoundException:
            pass  # nothing logged yet
        if done or not follow:
            return
        time.sleep(1)


@jobs_app.command("stop")
def stop(name: str, state_dir: Path | None = StateDir) -> None:
    """StopTrainingJob: SIGTERM to every host, a grace period, then the kill; saved models are uploaded."""
    _client(state_dir, "sagemaker").stop_training_job(TrainingJobName=name)
    console.print(f"stopping {name}")
