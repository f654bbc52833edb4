"""The search: Random reproducible by seed, Grid covers its grid, replay and resume, Hyperband prunes."""

from __future__ import annotations

import math

from kennel.runtime.tuning.space import parse_ranges
from kennel.runtime.tuning.study import Finished, Search, SearchConfig

RANGES = {
    "ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.001", "MaxValue": "0.1"}],
    "IntegerParameterRanges": [{"Name": "layers", "MinValue": "1", "MaxValue": "8"}],
    "CategoricalParameterRanges": [{"Name": "batch", "Values": ['"32"', '"64"', '"128"']}],
}


def _search(strategy="Random", seed=7, ranges=RANGES, **extra):
    return Search(parse_ranges(ranges), SearchConfig(strategy=strategy, minimize=True, seed=seed, **extra))


def _loss(hps):
    return (math.log10(float(hps["lr"])) + 2) ** 2 + abs(int(hps["layers"]) - 3) * 0.1


def _run(search, n, offset=0):
    out = []
    for i in range(offset, offset + n):
        hps = search.ask(f"t{i}", i + 1)
        search.tell(f"t{i}", _loss(hps), "complete")
        out.append(hps)
    return out


def test_random_is_reproducible_by_seed_even_after_a_rebuild():
    first = _run(_search(seed=11), 6)
    assert _run(_search(seed=11), 6) == first
    assert _run(_search(seed=12), 6) != first
    rebuilt = _search(seed=11)
    rebuilt.seed(Finished(h, _loss(h), "complete") for h in first[:3])
    assert _run(rebuilt, 3, offset=3) == first[3:]


def test_grid_covers_every_point_once():
    ranges = {"CategoricalParameterRanges": [{"Name": "a", "Values": ["1", "2"]},
                                             {"Name": "b", "Values": ['"x"', '"y"', '"z"']}]}  # fmt: skip
    search = _search("Grid", ranges=ranges)
    assert search.grid_size() == 6
    seen = [search.ask(f"t{i}", i) for i in range(3)]
    rebuilt = _search("Grid", ranges=ranges)
    rebuilt.seed(Finished(h, 1.0, "complete") for h in seen)
    seen += [rebuilt.ask(f"t{i}", i) for i in range(3, 6)]
    assert rebuilt.exhausted()
    assert sorted((p["a"], p["b"]) for p in seen) == sorted(
        (a, b) for a in "12" for b in ['"x"', '"y"', '"z"']
    )


def test_bayesian_values_stay_in_range_and_parallel_asks_differ():
    # TPE (Bayesian past GP_MAX_TRIALS, and Hyperband's sampler); GP is measured by benchmarks/tuning.py.
    search = _search("Bayesian", max_trials=20, bayesian_sampler="tpe")
    _run(search, 5)
    pending = [search.ask(f"p{i}", 10 + i) for i in range(3)]
    assert len({p["lr"] for p in pending}) == 3
    for hps in pending:
        assert 0.001 <= float(hps["lr"]) <= 0.1 and 1 <= int(hps["layers"]) <= 8
        assert hps["batch"] in ('"32"', '"64"', '"128"')


def test_resume_keeps_the_running_trials_hyperparameters():
    search = _search("Bayesian")
    search.resume("r1", {"lr": "0.01", "layers": "3", "batch": '"64"'})
    search.tell("r1", 0.5, "complete")
    (trial,) = search.study.trials
    assert trial.params == {"lr": 0.01, "layers": 3, "batch": '"64"'} and trial.value == 0.5


def test_hyperband_stops_a_clearly_worse_trial():
    search = _search("Hyperband", min_resource=1, max_resource=9, max_trials=12)
    for i in range(6):  # good trials that ran to the end
        search.ask(f"g{i}", i)
        for epoch in range(9):
            search.report(f"g{i}", 1.0 / (epoch + 1))
        search.tell(f"g{i}", 1.0 / 9, "complete")
    stopped = []
    for i in range(6):  # clearly worse ones: most land in brackets that judge them before epoch 9
        search.ask(f"bad{i}", 7 + i)
        stopped.append(next((e for e in range(1, 10) if search.report(f"bad{i}", 10.0 + e)), None))
        search.tell(f"bad{i}", 19.0, "pruned" if stopped[-1] else "complete")
    assert sum(1 for e in stopped if e is not None and e < 9) >= 3, stopped


def test_auto_early_stopping_uses_the_median_rule():
    search = _search("Random", early_stopping=True)
    for i in range(3):
        search.ask(f"g{i}", i)
        for value in (1.0, 0.5, 0.25):
            search.report(f"g{i}", value)
        search.tell(f"g{i}", 0.25, "complete")
    search.ask("bad", 4)
    assert search.report("bad", 0.9) is False  # better than the median of 1.0
    assert search.report("bad", 0.9) is True  # epoch 2: worse than running average 0.75


def test_bayesian_is_gp_until_the_search_grows_long():
    search = _search("Bayesian", max_trials=400)
    assert type(search.study.sampler).__name__ == "GPSampler"
    points = [
        {"lr": str(0.001 * (1 + i % 90)), "layers": str(1 + i % 8), "batch": '"64"'} for i in range(200)
    ]
    search.seed(Finished(p, float(i), "complete") for i, p in enumerate(points))
    search.ask("late", 201)
    assert type(search.study.sampler).__name__ == "TPESampler"
