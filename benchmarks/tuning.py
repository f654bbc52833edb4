"""Hyperparameter tuning: search quality, Hyperband's savings, and a trial's overhead — one run.

1. **Search quality.** A known function of four hyperparameters (a log-scaled learning rate, a
   continuous x, an integer depth, a categorical optimiser) plus Gaussian noise stands in for a
   training script's final loss. Each strategy searches it through :class:`kennel.runtime.tuning.study.
   Search` — the very object a tuning job's control loop drives — one trial at a time; a trial's
   *noisy* value is told to the search, and we count the trials until one whose *true* value is within
   5 % of the optimum has been run (capped at ``--budget``). Median over ``--seeds`` seeds; Bayesian
   with Optuna's GP sampler (what tuning jobs use) and with TPE (the measurement behind that choice),
   each one at a time and with 4 trials in flight, and Random. Target: Bayesian ≤ 0.5 × Random.
2. **Hyperband.** The same function as a per-epoch curve (loss_e = f + 2 / e + noise, 27 epochs).
   Full search: ``--hb-trials`` trials run to the end. Hyperband: the same number of trials under
   Optuna's Hyperband pruner (MinResource 1, MaxResource 27), each printed objective reported as a
   tuning job reports it. TPE proposes on both sides (Hyperband's sampler), so the figures isolate
   what stopping saves: total trial-epochs and best true objective, median over seeds. Target: the
   same best (within 5 %) for ≤ 0.5 × the epochs.
3. **Overhead** (``--live``, on by default): a real gateway runs a 3-trial Random tuning job of a quick
   script; each trial's wall time (CreateTrainingJob → TrainingEndTime) against the same script run by
   hand with ``python``. Target: ≤ by hand + 2 s.

    python benchmarks/tuning.py [--seeds 21] [--budget 400] [--no-live]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable

from kennel.runtime.tuning.space import parse_ranges
from kennel.runtime.tuning.study import Search, SearchConfig

RANGES = {
    "ContinuousParameterRanges": [
        {"Name": "lr", "MinValue": "0.00001", "MaxValue": "1", "ScalingType": "Auto"},
        {"Name": "x", "MinValue": "0", "MaxValue": "1", "ScalingType": "Linear"},
    ],
    "IntegerParameterRanges": [{"Name": "depth", "MinValue": "1", "MaxValue": "12", "ScalingType": "Linear"}],
    "CategoricalParameterRanges": [{"Name": "opt", "Values": ['"adam"', '"sgd"', '"rmsprop"']}],
}
OPTIMUM = 1.0
PENALTY = {'"adam"': 0.0, '"sgd"': 0.03, '"rmsprop"': 0.1}


def true_loss(hps: dict[str, str]) -> float:
    """1 at the optimum (lr 10^-2.5, x 0.3, depth 5, adam); a random draw lands within 5 % of it with
    probability ≈ 0.022 (Monte Carlo), so Random needs about 31 trials in the median."""
    lr, x, depth = float(hps["lr"]), float(hps["x"]), int(hps["depth"])
    shape = 0.1 * (math.log10(lr) + 2.5) ** 2 + 1.5 * (x - 0.3) ** 2 + 0.005 * abs(depth - 5)
    return OPTIMUM + shape + PENALTY[hps["opt"]]


def trials_to_target(config: SearchConfig, budget: int, seed: int, parallel: int = 1) -> int:
    """Trials run until one's true loss is within 5 % of the optimum (``budget`` + 1 if never)."""
    noise = random.Random(seed * 7919)
    search = Search(parse_ranges(RANGES), config)
    queue: list[tuple[str, dict[str, str]]] = []
    for index in range(1, budget + 1):
        while len(queue) < parallel:  # keep `parallel` trials in flight, oldest finishes first
            key = f"t{index + len(queue)}"
            queue.append((key, search.ask(key, index + len(queue))))
        key, hps = queue.pop(0)
        loss = true_loss(hps)
        search.tell(key, loss + noise.gauss(0, 0.02), "complete")
        if loss <= OPTIMUM * 1.05:
            return index
    return budget + 1


def quality(seeds: int, budget: int) -> dict[str, tuple[float, float]]:
    """strategy → (median trials to target, median seconds per search)."""

    def tpe(seed: int) -> SearchConfig:
        return SearchConfig("Bayesian", True, seed=seed, max_trials=budget, bayesian_sampler="tpe")

    variants: dict[str, Callable[[int], tuple[SearchConfig, int]]] = {
        "Bayesian (TPE)": lambda s: (tpe(s), 1),
        "Bayesian (TPE), 4 in flight": lambda s: (tpe(s), 4),
        "Random": lambda s: (SearchConfig("Random", True, seed=s, max_trials=budget), 1),
    }
    try:
        import scipy  # noqa: F401  (Optuna's GP sampler needs it)

        for label, parallel in (("Bayesian (GP)", 1), ("Bayesian (GP), 4 in flight", 4)):
            variants[label] = lambda s, p=parallel: (
                SearchConfig("Bayesian", True, seed=s, max_trials=budget, bayesian_sampler="gp"),
                p,
            )
    except ImportError:
        print("(scipy not installed: the GP sampler is not measured)")
    out = {}
    for label, make in variants.items():
        counts, seconds = [], []
        for seed in range(1, seeds + 1):
            config, parallel = make(seed)
            started = time.perf_counter()
            counts.append(trials_to_target(config, budget, seed, parallel))
            seconds.append(time.perf_counter() - started)
        out[label] = (statistics.median(counts), statistics.median(seconds))
        print(f"  {label:30s} trials to within 5 %: median {out[label][0]:6.1f}  {sorted(counts)}  "
              f"({out[label][1]:.2f} s per search)")  # fmt: skip
    return out


def hyperband(seeds: int, trials: int, epochs: int = 27) -> tuple[float, float, float, float]:
    """(median full-search epochs, median Hyperband epochs, median full best, median Hyperband best)."""
    full_epochs, hb_epochs, full_best, hb_best = [], [], [], []
    for seed in range(1, seeds + 1):
        for strategy, epochs_out, best_out in (
            ("Bayesian", full_epochs, full_best),
            ("Hyperband", hb_epochs, hb_best),
        ):
            noise = random.Random(seed * 104729)
            # Both propose with TPE (Hyperband's sampler), so the figures isolate what stopping saves.
            config = SearchConfig(strategy, True, seed=seed, max_trials=trials, min_resource=1,
                                  max_resource=epochs if strategy == "Hyperband" else 0,
                                  name=f"bench-{seed}", bayesian_sampler="tpe")  # fmt: skip
            search = Search(parse_ranges(RANGES), config)
            spent, best = 0, math.inf
            for index in range(1, trials + 1):
                key = f"t{index}"
                hps = search.ask(key, index)
                base = true_loss(hps)
                stopped = False
                for epoch in range(1, epochs + 1):
                    spent += 1
                    if search.report(key, base + 2.0 / epoch + noise.gauss(0, 0.02)):
                        stopped = True
                        break
                value = base + 2.0 / epochs
                search.tell(key, None if stopped else value, "pruned" if stopped else "complete")
                if not stopped:
                    best = min(best, base)
            epochs_out.append(spent)
            best_out.append(best)
    return (statistics.median(full_epochs), statistics.median(hb_epochs), statistics.median(full_best),
            statistics.median(hb_best))  # fmt: skip


SCRIPT = r"""
import argparse, time
p = argparse.ArgumentParser()
p.add_argument("-x", type=float, default=0.5)
args, _ = p.parse_known_args()
for epoch in range(1, 4):
    time.sleep(0.3)
    print(f"Testing Loss: {(args.x - 0.3) ** 2 + 1 / epoch:.5f}", flush=True)
"""
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def overhead() -> None:
    import io
    import json
    import subprocess
    import sys
    import tarfile
    import tempfile
    from pathlib import Path

    import boto3

    from kennel.cloud import server
    from kennel.cloud.cloudstate import admin_credentials
    from kennel.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="kennel-bench-tuning-"))
    settings = Settings(state_dir=work / "state", port=server.free_port())
    running = server.start_detached(settings, follow_caller=True)
    try:
        creds = admin_credentials(settings)
        assert creds is not None
        session = boto3.session.Session(
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            region_name="us-east-1",
        )
        url = f"http://127.0.0.1:{settings.port}"
        sm, s3, iam = (session.client(s, endpoint_url=url) for s in ("sagemaker", "s3", "iam"))
        role = iam.create_role(RoleName="BenchRole", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"][
            "Arn"
        ]
        iam.attach_role_policy(
            RoleName="BenchRole", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
        )
        s3.create_bucket(Bucket="sagemaker-bench-tuning")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            info = tarfile.TarInfo("train.py")
            info.size = len(SCRIPT.encode())
            tar.addfile(info, io.BytesIO(SCRIPT.encode()))
        s3.put_object(Bucket="sagemaker-bench-tuning", Key="code/sourcedir.tar.gz", Body=buffer.getvalue())
        static = {
            "sagemaker_program": '"train.py"',
            "sagemaker_region": '"us-east-1"',
            "sagemaker_submit_directory": '"s3://sagemaker-bench-tuning/code/sourcedir.tar.gz"',
        }
        started = time.time()
        config = {
            "Strategy": "Random",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 1},
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            "ParameterRanges": {
                "ContinuousParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "1"}]
            },
        }
        algorithm = {
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:1.4.0-cpu-py3",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "loss", "Regex": "Testing Loss: ([0-9.]+)"}],
        }
        sm.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="bench-overhead",
            HyperParameterTuningJobConfig=config,
            TrainingJobDefinition={
                "StaticHyperParameters": static,
                "RoleArn": role,
                "AlgorithmSpecification": algorithm,
                "OutputDataConfig": {"S3OutputPath": "s3://sagemaker-bench-tuning/out"},
                "HyperParameterTuningResourceConfig": {
                    "InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30,
                },
                "StoppingCondition": {"MaxRuntimeInSeconds": 600},
            },
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="bench-overhead")
            if job["HyperParameterTuningJobStatus"] not in ("InProgress", "Stopping"):
                break
            time.sleep(0.2)
        total = time.time() - started
        path = work / "by_hand.py"
        path.write_text(SCRIPT)
        hand_started = time.perf_counter()
        subprocess.run([sys.executable, str(path), "-x", "0.5"], check=True, capture_output=True, timeout=60)
        hand = time.perf_counter() - hand_started
        summaries = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="bench-overhead", SortBy="CreationTime"
        )["TrainingJobSummaries"]
        walls = [(s["TrainingEndTime"] - s["CreationTime"]).total_seconds() for s in summaries]
        print(f"  status {job['HyperParameterTuningJobStatus']}; script by hand {hand:.2f} s")
        for item, wall in zip(summaries, walls, strict=True):
            extra = wall - hand
            print(f"  {item['TrainingJobName']}: {wall:.2f} s, +{extra:.2f} s over by hand (target ≤ +2 s)")
        print(f"  whole tuning job (create → Completed, 3 trials in a row): {total:.2f} s, "
              f"{total / (3 * hand):.2f}× three runs by hand")  # fmt: skip
    finally:
        server.stop_pid(running.pid)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=21)
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--hb-trials", type=int, default=40)
    parser.add_argument("--live", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    print(f"1. Search quality: trials until one is within 5 % of the optimum ({args.seeds} seeds, cap "
          f"{args.budget})")  # fmt: skip
    found = quality(args.seeds, args.budget)
    random_median = found["Random"][0]
    for label, (median, _) in found.items():
        if label != "Random":
            print(f"  {label} / Random = {median / random_median:.2f}  (target ≤ 0.50)")

    print(f"\n2. Hyperband vs full search ({args.hb_trials} trials of 27 epochs, {args.seeds} seeds)")
    full_e, hb_e, full_b, hb_b = hyperband(args.seeds, args.hb_trials)
    print(
        f"  trial-epochs: full {full_e:.0f}, Hyperband {hb_e:.0f}  ratio {hb_e / full_e:.2f} (target ≤ 0.50)"
    )
    print(f"  best true objective: full {full_b:.4f}, Hyperband {hb_b:.4f}  ratio {hb_b / full_b:.3f} "
          "(target ≤ 1.05)")  # fmt: skip

    if args.live:
        print("\n3. Overhead: a 3-trial Random tuning job on a live gateway vs the script by hand")
        overhead()


if __name__ == "__main__":
    main()
