"""The training-container contract (sagemaker-training-toolkit's), as pure functions.

What a script sees on AWS: ``/opt/ml/input/config/*.json``, ``SM_*`` variables, and its user
hyperparameters as ``--name value`` arguments. Values in ``hyperparameters.json`` are strings; the
toolkit JSON-decodes each one (keeping a raw string when it is not JSON) before splitting off the
``sagemaker_*`` ones, so ``"\\"64\\""`` reaches the script as ``--batch_size 64``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

OPT_ML = "/opt/ml"
INPUT_DIR = f"{OPT_ML}/input"
CONFIG_DIR = f"{INPUT_DIR}/config"
DATA_DIR = f"{INPUT_DIR}/data"
MODEL_DIR = f"{OPT_ML}/model"
OUTPUT_DIR = f"{OPT_ML}/output"
OUTPUT_DATA_DIR = f"{OUTPUT_DIR}/data"
INTERMEDIATE_DIR = f"{OUTPUT_DIR}/intermediate"
CODE_DIR = f"{OPT_ML}/code"
CHECKPOINT_DIR = f"{OPT_ML}/checkpoints"
MASTER_PORT = 7777
# Images Kennel knows how to run without a script: their entry point is a module of this machine's
# Python (the repository part of the image URI, before the tag, names the image).
KNOWN_IMAGES = {"kennel-training": "kennel.ml.train"}


def known_image_module(image: str) -> str | None:
    """The module a Kennel-known training image runs (``kennel-training:latest`` or an ECR-style URI
    whose repository is ``kennel-training``), or None for any other image."""
    repository = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    return KNOWN_IMAGES.get(
        repository
    )  # what the PyTorch container exports; each job has its own network, so no clashes


# Hyperparameters the toolkit consumes itself (never passed to the script).
_RESERVED = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_region",
        "sagemaker_container_log_level",
        "sagemaker_job_name",
        "default_user_module_name",
        "_tuning_objective_metric",
        "sagemaker_s3_output",
    }
)


@dataclass(frozen=True)
class Channel:
    name: str
    distribution: str = "FullyReplicated"  # or ShardedByS3Key
    input_mode: str = "File"
    content_type: str | None = None


def decode_hyperparameters(raw: Mapping[str, str]) -> dict[str, object]:
    decoded: dict[str, object] = {}
    for name, value in raw.items():
        try:
            decoded[name] = json.loads(value)
        except (TypeError, ValueError):
            decoded[name] = value
    return decoded


def split_hyperparameters(decoded: Mapping[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """(user hyperparameters, framework parameters): everything ``sagemaker_*`` or reserved is the
    framework's."""
    user: dict[str, object] = {}
    framework: dict[str, object] = {}
    for name, value in decoded.items():
        if name in _RESERVED or name.startswith("sagemaker_"):
            if name not in _RESERVED:
                framework[name] = value
        else:
            user[name] = value
    return user, framework


def _arg_value(value: object) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def cmd_args(user: Mapping[str, object]) -> list[str]:
    """``--name value`` per hyperparameter in name order (``-n`` for one-letter names), as the toolkit."""
    args: list[str] = []
    for name in sorted(user):
        args += [f"-{name}" if len(name) == 1 else f"--{name}", _arg_value(user[name])]
    return args


def host_names(count: int) -> list[str]:
    # The toolkit sorts hosts as strings; algo-10 sorts before algo-2 on AWS as well.
    return sorted(f"algo-{i}" for i in range(1, count + 1))


def resource_config(current: str, hosts: Sequence[str], instance_type: str) -> dict:
    return {
        "current_host": current,
        "current_instance_type": instance_type,
        "current_group_name": "homogeneousCluster",
        "hosts": list(hosts),
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": instance_type,
                "hosts": list(hosts),
            }
        ],
        "network_interface_name": "eth0",
    }


def input_data_config(channels: Sequence[Channel]) -> dict:
    config: dict[str, dict] = {}
    for channel in channels:
        entry = {
            "TrainingInputMode": channel.input_mode,
            "S3DistributionType": channel.distribution,
            "RecordWrapperType": "None",
        }
        if channel.content_type:
            entry["ContentType"] = channel.content_type
        config[channel.name] = entry
    return config


def _compact(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class HostContext:
    """What makes one host's environment: the job, this host, and the machine's counts."""

    job_name: str
    job_arn: str
    region: str
    current_host: str
    hosts: tuple[str, ...]
    instance_type: str
    channels: tuple[Channel, ...]
    raw_hyperparameters: Mapping[str, str]
    entry_point: str
    submit_directory: str
    num_cpus: int
    num_gpus: int = 0


def container_environment(ctx: HostContext) -> dict[str, str]:
    """Every ``SM_*`` variable the toolkit exports, plus the PyTorch container's own."""
    decoded = decode_hyperparameters(ctx.raw_hyperparameters)
    user, framework = split_hyperparameters(decoded)
    args = cmd_args(user)
    if ctx.entry_point.startswith("-m "):
        module = ctx.entry_point[3:]
    elif ctx.entry_point.endswith(".py"):
        module = ctx.entry_point.rsplit(".", 1)[0]
    else:
        module = ctx.entry_point
    channel_names = sorted(c.name for c in ctx.channels)
    resource = resource_config(ctx.current_host, ctx.hosts, ctx.instance_type)
    data_config = input_data_config(ctx.channels)
    master = ctx.hosts[0]
    log_level = decoded.get("sagemaker_container_log_level", 20)
    estimator_job = str(decoded.get("sagemaker_job_name", ctx.job_name))
    training_env = {
        "additional_framework_parameters": framework,
        "channel_input_dirs": {name: f"{DATA_DIR}/{name}" for name in channel_names},
        "current_host": ctx.current_host,
        "current_instance_type": ctx.instance_type,
        "framework_module": "sagemaker_pytorch_container.training:main",
        "hosts": list(ctx.hosts),
        "hyperparameters": user,
        "input_config_dir": CONFIG_DIR,
        "input_data_config": data_config,
        "input_dir": INPUT_DIR,
        "is_master": ctx.current_host == master,
        "job_name": estimator_job,
        "log_level": log_level,
        "master_hostname": master,
        "model_dir": MODEL_DIR,
        "module_dir": ctx.submit_directory,
        "module_name": module,
        "network_interface_name": "eth0",
        "num_cpus": ctx.num_cpus,
        "num_gpus": ctx.num_gpus,
        "output_data_dir": OUTPUT_DATA_DIR,
        "output_dir": OUTPUT_DIR,
        "output_intermediate_dir": INTERMEDIATE_DIR,
        "resource_config": resource,
        "user_entry_point": ctx.entry_point,
    }
    env = {
        "SM_HOSTS": _compact(list(ctx.hosts)),
        "SM_CURRENT_HOST": ctx.current_host,
        "SM_CURRENT_INSTANCE_TYPE": ctx.instance_type,
        "SM_CURRENT_INSTANCE_GROUP": "homogeneousCluster",
        "SM_CURRENT_INSTANCE_GROUP_HOSTS": _compact(list(ctx.hosts)),
        "SM_INSTANCE_GROUPS": _compact(["homogeneousCluster"]),
        "SM_IS_HETERO": "false",
        "SM_NETWORK_INTERFACE_NAME": "eth0",
        "SM_HPS": _compact(user),
        "SM_USER_ENTRY_POINT": ctx.entry_point,
        "SM_FRAMEWORK_PARAMS": _compact(framework),
        "SM_RESOURCE_CONFIG": _compact(resource),
        "SM_INPUT_DATA_CONFIG": _compact(data_config),
        "SM_OUTPUT_DATA_DIR": OUTPUT_DATA_DIR,
        "SM_CHANNELS": _compact(channel_names),
        "SM_MODULE_NAME": module,
        "SM_LOG_LEVEL": str(log_level),
        "SM_FRAMEWORK_MODULE": "sagemaker_pytorch_container.training:main",
        "SM_INPUT_DIR": INPUT_DIR,
        "SM_INPUT_CONFIG_DIR": CONFIG_DIR,
        "SM_OUTPUT_DIR": OUTPUT_DIR,
        "SM_OUTPUT_INTERMEDIATE_DIR": INTERMEDIATE_DIR,
        "SM_NUM_CPUS": str(ctx.num_cpus),
        "SM_NUM_GPUS": str(ctx.num_gpus),
        "SM_NUM_NEURONS": "0",
        "SM_MODEL_DIR": MODEL_DIR,
        "SM_MODULE_DIR": ctx.submit_directory,
        "SM_TRAINING_ENV": _compact(training_env),
        "SM_USER_ARGS": _compact(args),
        "TRAINING_JOB_NAME": ctx.job_name,
        "TRAINING_JOB_ARN": ctx.job_arn,
        "SAGEMAKER_JOB_NAME": estimator_job,
        "SAGEMAKER_REGION": ctx.region,
        "CURRENT_HOST": ctx.current_host,
        "MASTER_ADDR": master,
        "MASTER_PORT": str(MASTER_PORT),
        "NCCL_IB_DISABLE": "1",
        "NCCL_DEBUG": "WARN",
    }
    for name in channel_names:
        env[f"SM_CHANNEL_{name.upper()}"] = f"{DATA_DIR}/{name}"
    for name, value in user.items():
        env[f"SM_HP_{name.upper()}"] = value if isinstance(value, str) else _compact(value)
    return env


def launch_command(
    python: str, entry_point: str, args: Sequence[str], *, torch_distributed: bool, hosts: Sequence[str],
    current: str, procs_per_host: int = 1,
) -> list[str]:  # fmt: skip
    """The toolkit's runners: a plain script runs as-is on every host; ``torch_distributed`` puts
    ``torchrun`` in front with the multi-node flags when there is more than one host."""
    if entry_point.startswith("-m "):  # a module of a Kennel-known image
        module = entry_point[3:]
        if not torch_distributed:
            return [python, "-m", module, *args]
        entry = ["-m", module]
    else:
        entry = [entry_point]
    if not torch_distributed:
        if entry_point.endswith(".py"):
            return [python, entry_point, *args]
        if entry_point.endswith(".sh"):
            return ["/bin/sh", entry_point, *args]
        return [f"./{entry_point}", *args]
    command = [python, "-m", "torch.distributed.run", "--nnodes", str(len(hosts))]
    command += ["--nproc_per_node", str(procs_per_host)]
    if len(hosts) > 1:
        command += ["--master_addr", hosts[0], "--master_port", str(MASTER_PORT)]
        command += ["--node_rank", str(list(hosts).index(current))]
    if entry[0] == "-m":
        command.append("--module")
        entry = entry[1:]
    return [*command, *entry, *args]
