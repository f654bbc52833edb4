"""The seeds' tuning step through the SageMaker Python SDK v2, unchanged: HyperparameterTuner over a
PyTorch estimator running the seed-style hpo.py, fit(), the analytics dataframe, best_estimator()."""

from __future__ import annotations

import uuid

import pytest
from tests.integration.support.roles import service_role
from tests.integration.support.sdk import sdk_session
from tests.integration.support.training import SEED_TRAINING

from kennel.ml.synth import SynthSpec, generate

METRICS = [{"Name": "Test Loss", "Regex": r"Testing Loss: ([0-9\.]+)"}]


def test_hyperparameter_tuner_fit_analytics_best_estimator(cloud, tmp_path, monkeypatch):
    root = tmp_path / "data"
    generate(root, SynthSpec(classes=3, per_class=4, size=32, seed=3))
    role = service_role(cloud)
    cloud.client("iam").attach_role_policy(
        RoleName="SageMakerRole", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    )
    sagemaker, session = sdk_session(cloud, tmp_path, monkeypatch)
    from sagemaker.pytorch import PyTorch
    from sagemaker.tuner import CategoricalParameter, ContinuousParameter, HyperparameterTuner

    inputs = session.upload_data(str(root), key_prefix="dogImages-tuning")
    estimator = PyTorch(
        entry_point="hpo.py",
        source_dir=str(SEED_TRAINING),
        base_job_name="pytorch_dog_hpo",
        role=role,
        framework_version="1.4.0",
        py_version="py3",
        instance_count=1,
        instance_type="ml.m5.xlarge",
        hyperparameters={"epochs": 1},
        sagemaker_session=session,
    )
    tuner = HyperparameterTuner(
        estimator,
        "Test Loss",
        {"learning_rate": ContinuousParameter(0.001, 0.1), "batch_size": CategoricalParameter([32, 64, 128])},
        METRICS,
        max_jobs=2,
        max_parallel_jobs=1,
        objective_type="Minimize",
    )
    tuner.fit({"training": inputs})  # waits, polling DescribeHyperParameterTuningJob every 5 s
    name = tuner.latest_tuning_job.name
    description = tuner.describe()
    assert description["HyperParameterTuningJobStatus"] == "Completed"
    assert description["TrainingJobStatusCounters"]["Completed"] == 2

    frame = sagemaker.HyperparameterTuningJobAnalytics(name, sagemaker_session=session).dataframe()
    assert len(frame) == 2
    assert set(frame["batch_size"]) <= {'"32"', '"64"', '"128"'}  # categoricals verbatim, as on AWS
    assert frame["FinalObjectiveValue"].notna().all()
    assert (frame["TrainingElapsedTimeSeconds"] >= 0).all()
    assert frame["learning_rate"].min() >= 0.001 and frame["learning_rate"].max() <= 0.1

    best = tuner.best_estimator()
    hyperparameters = best.hyperparameters()
    assert hyperparameters["batch_size"] in ('"32"', '"64"', '"128"')
    assert 0.001 <= float(hyperparameters["learning_rate"]) <= 0.1
    assert hyperparameters["sagemaker_program"] == '"hpo.py"'
    assert hyperparameters["_tuning_objective_metric"] in ('"Test Loss"', "Test Loss")
    assert best.model_data.endswith(
        f"{description['BestTrainingJob']['TrainingJobName']}/output/model.tar.gz"
    )
    assert frame["FinalObjectiveValue"].min() == pytest.approx(
        description["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    )


def test_every_strategy_through_the_sdk(cloud, tmp_path, monkeypatch):
    """Random (seeded, Auto early stopping), Grid and Hyperband, started together (fit(wait=False)),
    each waited on with the SDK's own poll (warm start is covered through boto3)."""
    from tests.integration.support.tuning import QUADRATIC

    role = service_role(cloud)
    cloud.client("iam").attach_role_policy(
        RoleName="SageMakerRole", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    )
    _, session = sdk_session(cloud, tmp_path, monkeypatch)
    from sagemaker.pytorch import PyTorch
    from sagemaker.tuner import (
        CategoricalParameter,
        ContinuousParameter,
        HyperbandStrategyConfig,
        HyperparameterTuner,
        StrategyConfig,
    )

    source = tmp_path / "code"
    source.mkdir()
    (source / "train.py").write_text(QUADRATIC)

    def tuner(strategy, ranges, epochs=3, **kwargs):
        estimator = PyTorch(
            entry_point="train.py", source_dir=str(source), role=role, framework_version="1.4.0",
            py_version="py3", instance_count=1, instance_type="ml.m5.xlarge",
            hyperparameters={"epochs": epochs}, sagemaker_session=session,
        )  # fmt: skip
        # The SDK names a tuning job <base>-YYMMDD-HHMM: jobs started in the same minute need their own base.
        base = f"{strategy[:4].lower()}-{uuid.uuid4().hex[:6]}"
        return HyperparameterTuner(
            estimator, "Test Loss", ranges, METRICS, strategy=strategy, objective_type="Minimize",
            base_tuning_job_name=base, **kwargs,
        )  # fmt: skip

    x = {"x": ContinuousParameter(0.0, 1.0)}
    random = tuner("Random", x, max_jobs=4, max_parallel_jobs=2, random_seed=7, early_stopping_type="Auto")
    # The SDK sends max_jobs even for Grid (None fails botocore's validation): the grid's size.
    grid = tuner("Grid", {"opt": CategoricalParameter(["adam", "sgd"])}, max_jobs=2, max_parallel_jobs=2)
    bands = StrategyConfig(HyperbandStrategyConfig(max_resource=9, min_resource=1))
    hyperband = tuner("Hyperband", x, epochs=9, max_jobs=3, max_parallel_jobs=3, strategy_config=bands)
    for item in (random, grid, hyperband):
        item.fit(wait=False)
    for item in (random, grid, hyperband):
        item.wait()
        assert item.describe()["HyperParameterTuningJobStatus"] == "Completed"
    assert sorted(grid.analytics().dataframe()["opt"]) == ['"adam"', '"sgd"']
    assert len(random.analytics().dataframe()) == 4
