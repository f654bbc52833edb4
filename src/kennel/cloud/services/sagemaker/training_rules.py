"""Debugger and profiler rules of a training job: their statuses from creation on, verdicts from the
logged loss series when the job ends, and the ProfilerReport (an HTML page with plots of the hosts'
CPU and memory and the job's metrics) written to S3 where AWS writes it."""

from __future__ import annotations

import base64
import html
import io
import itertools
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from kennel.cloud.services.sagemaker.jobdata import JobFailure, RoleS3
from kennel.runtime.jobs.rules import evaluate_rule

REPORT_KEY = "rule-output/ProfilerReport/profiler-output/profiler-report.html"


def _rule_job_arn(region: str, account: str, job: str, rule: str) -> str:
    # AWS names rule evaluation jobs <first 26 characters of the job>-<rule, lower case>-<8 hex>.
    return (
        f"arn:aws:sagemaker:{region}:{account}:processing-job/"
        f"{job[:26].lower()}-{rule.lower()}-{secrets.token_hex(4)}"
    )


def initial_statuses(spec: dict, job: str, region: str, account: str, now: float) -> dict:
    state: dict = {}
    for key, field in (
        ("debug_rules", "DebugRuleConfigurations"),
        ("profiler_rules", "ProfilerRuleConfigurations"),
    ):
        configs = spec.get(field) or []
        if configs:
            state[key] = [
                {
                    "RuleConfigurationName": config["RuleConfigurationName"],
                    "RuleEvaluationJobArn": _rule_job_arn(
                        region, account, job, config["RuleConfigurationName"]
                    ),
                    "RuleEvaluationStatus": "InProgress",
                    "LastModifiedTime": now,
                }
                for config in configs
            ]
    return state


def _rule_name(config: dict) -> str:
    return (config.get("RuleParameters") or {}).get("rule_to_invoke") or config["RuleConfigurationName"]


def final_statuses(
    spec: dict,
    state: dict,
    series: Mapping[str, Sequence[float]],
    now: float,
    *,
    outcome: str,
    report_written: bool,
) -> dict:
    """Verdicts for every rule once the job has ended (a failed or stopped job stops its rules)."""
    changes: dict = {}
    for key, field in (
        ("debug_rules", "DebugRuleConfigurations"),
        ("profiler_rules", "ProfilerRuleConfigurations"),
    ):
        statuses = state.get(key) or []
        configs = {c["RuleConfigurationName"]: c for c in spec.get(field) or []}
        updated = []
        for status in statuses:
            config = configs.get(status["RuleConfigurationName"], {"RuleConfigurationName": "?"})
            item = dict(status, LastModifiedTime=now)
            if outcome != "Completed":
                item["RuleEvaluationStatus"] = "Stopped"
                item["StatusDetails"] = f"The training job ended as {outcome}; the rule was stopped."
            elif _rule_name(config) == "ProfilerReport":
                item["RuleEvaluationStatus"] = "NoIssuesFound" if report_written else "Error"
                item["StatusDetails"] = (
                    f"The profiler report is at {REPORT_KEY} under the job's rule output."
                    if report_written
                    else "The profiler report could not be written to S3."
                )
            else:
                verdict = evaluate_rule(_rule_name(config), config.get("RuleParameters") or {}, series)
                item["RuleEvaluationStatus"] = verdict.status
                if verdict.details:
                    item["StatusDetails"] = verdict.details
            updated.append(item)
        if updated:
            changes[key] = updated
    return changes


def wants_profiler_report(spec: dict) -> bool:
    return any(_rule_name(c) == "ProfilerReport" for c in spec.get("ProfilerRuleConfigurations") or [])


def write_profiler_report(
    storage: RoleS3,
    spec: dict,
    job: str,
    usage: Mapping[str, Sequence[tuple[float, float, float]]],
    series: Mapping[str, Sequence[tuple[float, float]]],
    scratch: Path,
) -> bool:
    base = (spec.get("ProfilerConfig") or {}).get("S3OutputPath") or spec["OutputDataConfig"]["S3OutputPath"]
    page = scratch / "profiler-report.html"
    scratch.mkdir(parents=True, exist_ok=True)
    page.write_text(_report_html(job, usage, series))
    try:
        storage.upload(page, f"{base.rstrip('/')}/{job}/{REPORT_KEY}")
    except JobFailure:
        return False
    return True


def _figure_png(draw) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _report_html(job: str, usage, series) -> str:
    start = min([points[0][0] for points in usage.values() if points] + [0.0] or [0.0])
    sections = [f"<h1>Profiler report: {html.escape(job)}</h1>"]
    rows = []
    for host, points in sorted(usage.items()):
        if points:
            cpu = [p[1] for p in points]
            mem = [p[2] for p in points]
            rows.append(
                f"<tr><td>{html.escape(host)}</td><td>{len(points)}</td><td>{sum(cpu) / len(cpu):.1f}</td>"
                f"<td>{max(cpu):.1f}</td><td>{max(mem):.2f}</td></tr>"
            )
    sections.append(
        "<h2>Hosts</h2><table border=1><tr><th>host</th><th>samples</th><th>mean CPU %</th>"
        "<th>peak CPU %</th><th>peak memory %</th></tr>" + "".join(rows) + "</table>"
        "<p>CPU is percent of one core (100 per busy core, as AWS reports per instance); memory is percent "
        "of the machine. GPU utilisation is not sampled. Step times below are the intervals between "
        "successive values of each metric in the log.</p>"
    )
    for index, label in ((1, "CPU %"), (2, "memory %")):

        def draw(ax, index=index, label=label):
            for host, points in sorted(usage.items()):
                ax.plot([p[0] - start for p in points], [p[index] for p in points], label=host)
            ax.set_xlabel("seconds")
            ax.set_ylabel(label)
            ax.legend(loc="upper right", fontsize="small")

        sections.append(f'<h2>{label}</h2><img src="data:image/png;base64,{_figure_png(draw)}">')
    for name, points in sorted(series.items()):
        if len(points) < 2:
            continue
        steps = [b[0] - a[0] for a, b in itertools.pairwise(points)]

        def draw_metric(ax, points=points, name=name):
            ax.plot(range(len(points)), [p[1] for p in points], marker="o")
            ax.set_xlabel("logged point")
            ax.set_ylabel(name)

        sections.append(
            f"<h2>{html.escape(name)}</h2><p>median interval between values: "
            f"{sorted(steps)[len(steps) // 2]:.2f} s</p>"
            f'<img src="data:image/png;base64,{_figure_png(draw_metric)}">'
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'></head><body>"
        + "".join(sections)
        + "</body></html>"
    )
