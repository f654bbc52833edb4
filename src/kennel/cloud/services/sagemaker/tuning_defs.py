"""A tuning request read once: its training-job definitions, their objectives and ranges, the checks
AWS makes at CreateHyperParameterTuningJob, and the CreateTrainingJob request each trial becomes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kennel.cloud.errors import ValidationException
from kennel.cloud.services.sagemaker.common import ResourceLimitExceeded
from kennel.runtime.tuning.space import Range, SpaceError, grid, parse_ranges
from kennel.runtime.tuning.study import STRATEGIES

MAX_PARALLEL = 10  # AWS's default quota per tuning job (raisable there, fixed here)
MAX_TRIALS = 750
MAX_TRIALS_RANDOM = 10_000
MAX_DEFINITIONS = 10
MAX_WARM_START_PARENTS = 5
# Static hyperparameters Hyperband reads MaxResource from when StrategyConfig omits it [API].
EPOCH_NAMES = ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs")
OBJECTIVE_HP = "_tuning_objective_metric"
# Members of HyperParameterTrainingJobDefinition a trial's CreateTrainingJob carries over unchanged.
_CARRIED = (
    "RoleArn", "InputDataConfig", "OutputDataConfig", "StoppingCondition", "VpcConfig",
    "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption", "EnableManagedSpotTraining",
    "CheckpointConfig", "RetryStrategy", "Environment",
)  # fmt: skip


@dataclass(frozen=True)
class Definition:
    name: str | None  # DefinitionName (TrainingJobDefinitions) or None (TrainingJobDefinition)
    raw: dict
    metric: str
    minimize: bool
    ranges: list[Range]

    @property
    def static(self) -> dict[str, str]:
        return dict(self.raw.get("StaticHyperParameters") or {})

    def tuned(self, hyperparameters: dict[str, str]) -> dict[str, str]:
        names = {r.name for r in self.ranges}
        return {k: v for k, v in hyperparameters.items() if k in names}


def definitions(params: dict) -> list[Definition]:
    """Every training-job definition of a CreateHyperParameterTuningJob request, checked."""
    config = params["HyperParameterTuningJobConfig"]
    single, several = params.get("TrainingJobDefinition"), params.get("TrainingJobDefinitions")
    if bool(single) == bool(several):
        raise ValidationException(
            "Exactly one of TrainingJobDefinition and TrainingJobDefinitions must be specified."
        )
    out: list[Definition] = []
    if single:
        objective = config.get("HyperParameterTuningJobObjective")
        if not objective:
            raise ValidationException(
                "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective is required with "
                "TrainingJobDefinition."
            )
        out.append(_definition(None, single, objective, config.get("ParameterRanges")))
    else:
        if len(several) > MAX_DEFINITIONS:
            raise ValidationException(f"At most {MAX_DEFINITIONS} TrainingJobDefinitions are allowed.")
        for item in several:
            if not item.get("DefinitionName") or not item.get("TuningObjective"):
                raise ValidationException(
                    "Each of TrainingJobDefinitions needs a DefinitionName and a TuningObjective."
                )
            out.append(
                _definition(
                    item["DefinitionName"], item, item["TuningObjective"], item.get("HyperParameterRanges")
                )
            )
        names = [d.name for d in out]
        if len(set(names)) != len(names):
            raise ValidationException("DefinitionName must be unique within TrainingJobDefinitions.")
    return out


def _definition(name: str | None, raw: dict, objective: dict, ranges: Any) -> Definition:
    try:
        parsed = parse_ranges(ranges)
    except SpaceError as exc:
        raise ValidationException(str(exc)) from None
    metric = objective["MetricName"]
    defined = [m["Name"] for m in (raw.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []]
    if metric not in defined:
        raise ValidationException(
            f"The objective metric '{metric}' is not defined in the training job definition's "
            f"MetricDefinitions {defined}: the objective must be one of the metrics the algorithm emits."
        )
    static = raw.get("StaticHyperParameters") or {}
    clash = sorted({r.name for r in parsed} & set(static))
    if clash:
        raise ValidationException(
            f"Hyperparameters {clash} are both static and tunable; a hyperparameter is one or the other."
        )
    if not raw.get("ResourceConfig") and not raw.get("HyperParameterTuningResourceConfig"):
        raise ValidationException(
            "The training job definition needs ResourceConfig or HyperParameterTuningResourceConfig."
        )
    return Definition(name, raw, metric, objective.get("Type", "Minimize") == "Minimize", parsed)


def check_config(config: dict, defs: list[Definition]) -> None:
    strategy = config["Strategy"]
    if strategy not in STRATEGIES:
        raise ValidationException(f"Strategy '{strategy}' is not one of {list(STRATEGIES)}.")
    limits = config["ResourceLimits"]
    parallel = int(limits["MaxParallelTrainingJobs"])
    if parallel < 1:
        raise ValidationException("MaxParallelTrainingJobs must be at least 1.")
    if parallel > MAX_PARALLEL:
        raise ResourceLimitExceeded(
            f"The account-level service limit 'Number of parallel training jobs per tuning job' is "
            f"{MAX_PARALLEL}, and the request asks for {parallel}."
        )
    early = config.get("TrainingJobEarlyStoppingType", "Off")
    if strategy == "Hyperband" and early != "Off":
        raise ValidationException("TrainingJobEarlyStoppingType must be Off with the Hyperband strategy.")
    hyperband = (config.get("StrategyConfig") or {}).get("HyperbandStrategyConfig")
    if hyperband and strategy != "Hyperband":
        raise ValidationException(
            "StrategyConfig.HyperbandStrategyConfig is only for the Hyperband strategy."
        )
    if strategy == "Hyperband":
        low, high = hyperband_resources(config, defs[0])
        if high < 1:
            raise ValidationException(
                "Hyperband needs MaxResource: set StrategyConfig.HyperbandStrategyConfig.MaxResource or a "
                f"static hyperparameter named one of {list(EPOCH_NAMES)}."
            )
        if low > high:
            raise ValidationException("HyperbandStrategyConfig MinResource must not exceed MaxResource.")
    count = limits.get("MaxNumberOfTrainingJobs")
    if strategy == "Grid":
        try:
            points = sum(len(grid(d.ranges)) for d in defs)
        except Exception as exc:
            raise ValidationException(str(exc)) from None
        if count is not None and int(count) != points:
            raise ValidationException(
                f"With the Grid strategy MaxNumberOfTrainingJobs must be the number of grid points "
                f"({points}) or left out; it is {count}."
            )
        return
    if count is None:
        raise ValidationException(f"ResourceLimits.MaxNumberOfTrainingJobs is required for {strategy}.")
    most = MAX_TRIALS_RANDOM if strategy == "Random" else MAX_TRIALS
    if not 1 <= int(count) <= most:
        raise ResourceLimitExceeded(
            f"MaxNumberOfTrainingJobs is {count}; {strategy} tuning jobs run between 1 and {most}."
        )


def max_trials(config: dict, defs: list[Definition]) -> int:
    count = config["ResourceLimits"].get("MaxNumberOfTrainingJobs")
    if count is None:  # Grid without a count: the whole grid
        return sum(len(grid(d.ranges)) for d in defs)
    return int(count)


def hyperband_resources(config: dict, definition: Definition) -> tuple[int, int]:
    hyperband = (config.get("StrategyConfig") or {}).get("HyperbandStrategyConfig") or {}
    low = int(hyperband.get("MinResource") or 1)
    high = hyperband.get("MaxResource")
    if high is None:
        for name in EPOCH_NAMES:
            if name in definition.static:
                try:
                    high = int(json.loads(definition.static[name]))
                except (ValueError, TypeError):
                    continue
                break
    return low, int(high or 0)


def trial_request(definition: Definition, name: str, tuned: dict[str, str], tags: list) -> dict:
    """CreateTrainingJob for one trial: static hyperparameters unchanged, the tuned ones as strings,
    and ``_tuning_objective_metric`` (the container toolkit keeps it from the script's arguments)."""
    raw = definition.raw
    algorithm = {k: v for k, v in (raw.get("AlgorithmSpecification") or {}).items() if k != "AlgorithmName"}
    hyperparameters = {**definition.static, **tuned, OBJECTIVE_HP: definition.metric}
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": algorithm,
        "HyperParameters": hyperparameters,
        "ResourceConfig": resource_config(raw),
    }
    for key in _CARRIED:
        if raw.get(key) is not None:
            request[key] = raw[key]
    request.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 86400})
    if tags:
        request["Tags"] = tags
    return request


def resource_config(raw: dict) -> dict:
    if raw.get("ResourceConfig"):
        return dict(raw["ResourceConfig"])
    tuning = raw["HyperParameterTuningResourceConfig"]
    out: dict[str, Any] = {
        "InstanceCount": int(tuning.get("InstanceCount") or 1),
        "VolumeSizeInGB": int(tuning.get("VolumeSizeInGB") or 30),
    }
    instance_type = tuning.get("InstanceType") or next(
        (item.get("InstanceType") for item in tuning.get("InstanceConfigs") or []), "ml.m5.xlarge"
    )
    out["InstanceType"] = instance_type
    if tuning.get("VolumeKmsKeyId"):
        out["VolumeKmsKeyId"] = tuning["VolumeKmsKeyId"]
    return out
