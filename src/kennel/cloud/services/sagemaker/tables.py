"""SageMaker state in the store. Times are epoch seconds; request structures are kept as JSON text so
Describe* answers with what was asked for, member for member. A model's and a training job's request
carry their container ``Environment`` (where credentials tend to end up), so those columns are
``Sealed``: encrypted at rest, opened on read."""

from __future__ import annotations

from sqlalchemy import Column, Float, String, Table, Text

from kennel.cloud.sealing import Sealed
from kennel.cloud.statestore import metadata

models = Table(
    "sagemaker_models",
    metadata,
    Column("name", String, primary_key=True),
    Column("arn", String, nullable=False),
    Column("created", Float, nullable=False),
    Column("spec", Sealed("sagemaker_models.spec"), nullable=False),  # CreateModel's input minus Tags
    Column("tags", Text, nullable=False, default="[]"),
)

endpoint_configs = Table(
    "sagemaker_endpoint_configs",
    metadata,
    Column("name", String, primary_key=True),
    Column("arn", String, nullable=False),
    Column("created", Float, nullable=False),
    Column("spec", Text, nullable=False),  # CreateEndpointConfig's input minus Tags
    Column("tags", Text, nullable=False, default="[]"),
)

endpoints = Table(
    "sagemaker_endpoints",
    metadata,
    Column("name", String, primary_key=True),
    Column("arn", String, nullable=False),
    Column("config_name", String, nullable=False),
    Column("status", String, nullable=False),
    Column("failure_reason", Text, nullable=True),
    Column("created", Float, nullable=False),
    Column("modified", Float, nullable=False),
    # What runs: variant specs resolved from the config and its models when deployed, so the endpoint
    # comes back after a restart even if the config or a model was deleted since (as on AWS).
    Column("deployment", Text, nullable=False, default="[]"),
    Column("pending", Text, nullable=True),  # the deployment an UpdateEndpoint is rolling out
    Column("pending_config", String, nullable=True),
    Column("tags", Text, nullable=False, default="[]"),
)

training_jobs = Table(
    "sagemaker_training_jobs",
    metadata,
    Column("name", String, primary_key=True),
    Column("arn", String, nullable=False),
    Column("created", Float, nullable=False),
    Column("modified", Float, nullable=False),
    Column("status", String, nullable=False),  # TrainingJobStatus
    Column("secondary", String, nullable=False),  # SecondaryStatus
    Column("spec", Sealed("sagemaker_training_jobs.spec"), nullable=False),  # CreateTrainingJob's input
    Column("state", Text, nullable=False, default="{}"),  # transitions, times, metrics, failure reason
    Column("tuning_job_arn", String, nullable=True),
    Column("tags", Text, nullable=False, default="[]"),
)

tuning_jobs = Table(
    "sagemaker_tuning_jobs",
    metadata,
    Column("name", String, primary_key=True),
    Column("arn", String, nullable=False),
    Column("created", Float, nullable=False),
    Column("modified", Float, nullable=False),
    Column("status", String, nullable=False),  # HyperParameterTuningJobStatus
    # CreateHyperParameterTuningJob's input minus Tags: sealed, as its definitions' Environment may
    # hold secrets exactly like a training job's.
    Column("spec", Sealed("sagemaker_tuning_jobs.spec"), nullable=False),
    # Trials launched (index, definition), stop request, early stops, end time, completion details.
    Column("state", Text, nullable=False, default="{}"),
    Column("tags", Text, nullable=False, default="[]"),
)
