"""Debugger rules decided from the loss series a job logs, as pure functions.

AWS evaluates its built-in rules on tensors the smdebug hook saves per step. Kennel has what the
training script prints: the metric series that ``MetricDefinitions`` extract. Rules whose
definition needs only loss values (LossNotDecreasing, Overfit, Overtraining) are decided on those
series, one value per logged point instead of per step; rules that need tensors (gradients,
activations, weights) end as ``Error`` saying so, never with a made-up verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Series = Sequence[float]

TENSOR_RULES = frozenset(
    {
        "VanishingGradient", "PoorWeightInitialization", "ExplodingTensor", "WeightUpdateRatio",
        "AllZero", "ClassImbalance", "DeadRelu", "SaturatedActivation", "TensorVariance",
        "UnchangedTensor", "CheckInputImages", "NLPSequenceRatio", "Confusion", "FeatureImportanceOverweight",
        "TreeDepth", "StalledTrainingRule",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    status: str  # NoIssuesFound | IssuesFound | Error
    details: str = ""


def _pick(series: Mapping[str, Series], words: Sequence[str]) -> tuple[str, Series] | None:
    for name, values in sorted(series.items()):
        lowered = name.lower()
        if "loss" in lowered and any(word in lowered for word in words) and values:
            return name, values
    return None


def _losses(series: Mapping[str, Series]) -> tuple[tuple[str, Series] | None, tuple[str, Series] | None]:
    train = _pick(series, ("train",))
    valid = _pick(series, ("valid", "val", "test", "eval"))
    return train, valid


def _met(rule: str, index: int) -> Verdict:
    return Verdict(
        "IssuesFound",
        f"RuleEvaluationConditionMet: Evaluation of the rule {rule} at step {index} resulted in the "
        "condition being met\n",
    )


def loss_not_decreasing(values: Series, *, num_steps: int = 10, diff_percent: float = 0.1) -> Verdict:
    """Met when the loss has not dropped by ``diff_percent`` % over ``num_steps`` logged points."""
    if len(values) < 2:
        return Verdict("Error", "LossNotDecreasing needs at least two loss values; the job logged fewer.")
    window = min(num_steps, len(values) - 1)
    for index in range(window, len(values)):
        before, now = values[index - window], values[index]
        if before == 0:
            continue
        if (before - now) / abs(before) * 100 < diff_percent:
            return _met("LossNotDecreasing", index)
    return Verdict("NoIssuesFound")


def overfit(train: Series, valid: Series, *, ratio_threshold: float = 0.1, patience: int = 1,
            start_step: int = 0) -> Verdict:  # fmt: skip
    """Met when (validation − training) / training loss exceeds the ratio for ``patience`` points."""
    run = 0
    for index in range(start_step, min(len(train), len(valid))):
        if train[index] > 0 and (valid[index] - train[index]) / train[index] > ratio_threshold:
            run += 1
            if run >= patience:
                return _met("Overfit", index)
        else:
            run = 0
    return Verdict("NoIssuesFound")


def _stalled(values: Series, patience: int, delta: float) -> int | None:
    best, since = float("inf"), 0
    for index, value in enumerate(values):
        if value < best - delta:
            best, since = value, 0
        else:
            since += 1
            if since >= patience:
                return index
    return None


def overtraining(train: Series, valid: Series, *, patience_train: int = 5, patience_validation: int = 10,
                 delta: float = 0.01) -> Verdict:  # fmt: skip
    """Met when either loss stops improving by ``delta`` for its patience."""
    for values, patience in ((train, patience_train), (valid, patience_validation)):
        index = _stalled(values, patience, delta)
        if index is not None:
            return _met("Overtraining", index)
    return Verdict("NoIssuesFound")


def evaluate_rule(rule: str, parameters: Mapping[str, str], series: Mapping[str, Series]) -> Verdict:
    """The verdict for one built-in rule (``rule_to_invoke``) on the job's metric series."""
    number = {k: float(v) for k, v in parameters.items() if _is_number(v)}
    train, valid = _losses(series)
    names = ", ".join(sorted(series)) or "none"
    if rule in TENSOR_RULES:
        return Verdict(
            "Error",
            f"{rule} needs tensors saved by the smdebug hook (gradients, activations or weights); "
            "Kennel sees only the metrics in the job's log, so it cannot decide this rule.",
        )
    if rule == "LossNotDecreasing":
        found = train or valid or _pick(series, ("",))
        if found is None:
            return Verdict(
                "Error", f"LossNotDecreasing needs a loss metric in MetricDefinitions (found: {names})."
            )
        return loss_not_decreasing(found[1], num_steps=int(number.get("num_steps", 10)),
                                   diff_percent=number.get("diff_percent", 0.1))  # fmt: skip
    if rule in ("Overfit", "Overtraining"):
        if train is None or valid is None:
            return Verdict(
                "Error",
                f"{rule} needs a training-loss and a validation-loss metric in MetricDefinitions "
                f"(names containing 'loss' and 'train' / 'test' or 'valid'); found: {names}.",
            )
        if rule == "Overfit":
            return overfit(
                train[1], valid[1], ratio_threshold=number.get("ratio_threshold", 0.1),
                patience=int(number.get("patience", 1)), start_step=int(number.get("start_step", 0)),
            )  # fmt: skip
        return overtraining(train[1], valid[1], patience_train=int(number.get("patience_train", 5)),
                            patience_validation=int(number.get("patience_validation", 10)),
                            delta=number.get("delta", 0.01))  # fmt: skip
    return Verdict("Error", f"Kennel does not evaluate the rule {rule}.")


def _is_number(value: str) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
