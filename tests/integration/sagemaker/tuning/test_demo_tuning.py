"""The demo's tuning step against a live gateway: the dataset to S3, a Bayesian tuning job whose trials
are real training jobs of Kennel's trainer, the table and the PNG, and the best trial's values back.

A tiny recipe (32 px images, one epoch, two trials) keeps it to well under a minute; the demo's own
recipe differs only in those numbers."""

from __future__ import annotations

import io
import re
from dataclasses import replace

import pytest
from rich.console import Console
from tests.integration.support.training import unique

from kennel.demo import training, tuning
from kennel.demo.loadtest import Clients
from kennel.demo.recipe import BATCH_SIZE, LEARNING_RATE, RESNET18

pytestmark = pytest.mark.slow

TINY = replace(
    RESNET18,
    name="tiny",
    trial={"image-size": "32", "epochs": "1"},
    batch_sizes=(16, 32),
    max_trials=2,
)


def test_demo_tuning_step_finds_the_best_trial(cloud, synth_data, tmp_path):
    clients = Clients(cloud.endpoint, cloud.access_key_id, cloud.secret_access_key)
    out = io.StringIO()
    console = Console(file=out, width=160)
    name = unique("demo-hpo")
    # Its own prefix: the bucket is the SDK's default, which other tests' channels share.
    channel = training.prepare(clients, synth_data, console, prefix=f"{name}-data")
    best = tuning.tune(clients, channel, TINY, console, tmp_path, name=name)

    low, high = TINY.learning_rate
    assert set(best) == {LEARNING_RATE, BATCH_SIZE}
    assert low <= float(best[LEARNING_RATE]) <= high and best[BATCH_SIZE] in {"16", "32"}
    sm = clients("sagemaker")
    job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert job["TrainingJobStatusCounters"]["Completed"] == 2
    trials = [
        tuning.trial_of(s)
        for s in sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
            "TrainingJobSummaries"
        ]
    ]
    assert all(t.objective is not None for t in trials)
    # The demo's ranking agrees with the service's BestTrainingJob, whose values it returned.
    assert tuning.ranked(trials)[0].name == job["BestTrainingJob"]["TrainingJobName"]
    assert {k: tuning.plain(v) for k, v in job["BestTrainingJob"]["TunedHyperParameters"].items()} == best
    trial = sm.describe_training_job(TrainingJobName=trials[0].name)
    assert trial["HyperParameters"]["image-size"] == '"32"'  # the recipe's trial settings reached it

    text = out.getvalue()
    assert f"{name}: trials, best first" in text and "★" in text and "best hyperparameters:" in text
    assert len(re.findall(r"^  trial \d ", text, re.MULTILINE)) == 2  # a line per finished trial
    assert (tmp_path / "tuning.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
