"""The training-container contract: hyperparameters → arguments and SM_* variables, as the toolkit."""

from __future__ import annotations

import json

import pytest

from kennel.runtime.jobs import contract as c

SDK_HPS = {  # what the SageMaker SDK v2 sends for the seeds' estimator (values JSON-encoded)
    "batch_size": '"64"',
    "learning_rate": "0.01",
    "epochs": "2",
    "sagemaker_program": '"hpo.py"',
    "sagemaker_submit_directory": '"s3://b/job/source/sourcedir.tar.gz"',
    "sagemaker_container_log_level": "20",
    "sagemaker_job_name": '"pytorch-training-2026-12-07"',
    "sagemaker_region": '"us-east-1"',
    "sagemaker_estimator_class_name": '"PyTorch"',
    "_tuning_objective_metric": "Test Loss",
}


def test_hyperparameters_become_sorted_arguments_without_framework_ones():
    user, framework = c.split_hyperparameters(c.decode_hyperparameters(SDK_HPS))
    assert c.cmd_args(user) == ["--batch_size", "64", "--epochs", "2", "--learning_rate", "0.01"]
    assert framework == {"sagemaker_estimator_class_name": "PyTorch"}


@pytest.mark.parametrize(
    ("user", "args"),
    [
        ({"n": 3}, ["-n", "3"]),
        ({"flag": True}, ["--flag", "True"]),
        ({"opts": {"a": 1, "b": "x"}}, ["--opts", "a=1,b=x"]),
        ({"name": "plain text"}, ["--name", "plain text"]),
    ],
)
def test_argument_forms(user, args):
    assert c.cmd_args(user) == args


def test_non_json_values_stay_strings():
    assert c.decode_hyperparameters({"x": "not json", "y": "[1, 2]"}) == {"x": "not json", "y": [1, 2]}


def test_hosts_sort_as_strings_like_the_toolkit():
    assert c.host_names(3) == ["algo-1", "algo-2", "algo-3"]
    assert c.host_names(10)[:3] == ["algo-1", "algo-10", "algo-2"]


def _env(host="algo-2", hosts=("algo-1", "algo-2")):
    return c.container_environment(
        c.HostContext(
            job_name="job-1", job_arn="arn:aws:sagemaker:us-east-1:000000000000:training-job/job-1",
            region="us-east-1", current_host=host, hosts=hosts, instance_type="ml.m5.xlarge",
            channels=(c.Channel("training"), c.Channel("valid")), raw_hyperparameters=SDK_HPS,
            entry_point="hpo.py", submit_directory="s3://b/job/source/sourcedir.tar.gz", num_cpus=2,
        )
    )  # fmt: skip


def test_sm_variables():
    env = _env()
    assert json.loads(env["SM_HOSTS"]) == ["algo-1", "algo-2"]
    assert env["SM_CURRENT_HOST"] == "algo-2"
    assert env["SM_MODEL_DIR"] == "/opt/ml/model"
    assert env["SM_OUTPUT_DATA_DIR"] == "/opt/ml/output/data"
    assert env["SM_CHANNEL_TRAINING"] == "/opt/ml/input/data/training"
    assert json.loads(env["SM_CHANNELS"]) == ["training", "valid"]
    assert json.loads(env["SM_HPS"]) == {"batch_size": "64", "epochs": 2, "learning_rate": 0.01}
    assert env["SM_HP_BATCH_SIZE"] == "64" and env["SM_HP_LEARNING_RATE"] == "0.01"
    assert json.loads(env["SM_USER_ARGS"]) == [
        "--batch_size",
        "64",
        "--epochs",
        "2",
        "--learning_rate",
        "0.01",
    ]
    assert env["MASTER_ADDR"] == "algo-1" and env["MASTER_PORT"] == "7777"
    assert env["SAGEMAKER_JOB_NAME"] == "pytorch-training-2026-12-07"  # the estimator's name, as the toolkit
    assert env["TRAINING_JOB_NAME"] == "job-1"
    training_env = json.loads(env["SM_TRAINING_ENV"])
    assert training_env["is_master"] is False and training_env["master_hostname"] == "algo-1"
    assert json.loads(env["SM_RESOURCE_CONFIG"])["current_host"] == "algo-2"
    assert "_tuning_objective_metric" not in env["SM_HPS"]


def test_launch_commands():
    plain = c.launch_command(
        "py", "hpo.py", ["--a", "1"], torch_distributed=False, hosts=["algo-1"], current="algo-1"
    )
    assert plain == ["py", "hpo.py", "--a", "1"]
    ddp = c.launch_command(
        "py", "train.py", [], torch_distributed=True, hosts=["algo-1", "algo-2"], current="algo-2"
    )
    assert ddp == [
        "py", "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
        "--master_addr", "algo-1", "--master_port", "7777", "--node_rank", "1", "train.py",
    ]  # fmt: skip
    single = c.launch_command("py", "t.py", [], torch_distributed=True, hosts=["algo-1"], current="algo-1")
    assert "--master_addr" not in single


def test_known_images_run_a_module():
    assert c.known_image_module("kennel-training:latest") == "kennel.ml.train"
    assert (
        c.known_image_module("000000000000.dkr.ecr.us-east-1.amazonaws.com/kennel-training:1.0")
        == "kennel.ml.train"
    )
    assert (
        c.known_image_module("763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:1.4.0-cpu-py3")
        is None
    )
    plain = c.launch_command(
        "py",
        "-m kennel.ml.train",
        ["--epochs", "1"],
        torch_distributed=False,
        hosts=["algo-1"],
        current="algo-1",
    )
    assert plain == ["py", "-m", "kennel.ml.train", "--epochs", "1"]
    ddp = c.launch_command(
        "py", "-m kennel.ml.train", [], torch_distributed=True, hosts=["algo-1"], current="algo-1"
    )
    assert ddp[-2:] == ["--module", "kennel.ml.train"]


def test_gpus_are_split_between_hosts(tmp_path):
    from kennel.runtime.jobs.host import Host
    from kennel.runtime.jobs.spec import JobSpec

    spec = JobSpec(
        name="j", arn="a", region="us-east-1", root=tmp_path, code_dir=tmp_path, entry_point="t.py",
        submit_directory="", hyperparameters={}, channels=(), instance_count=2, instance_type="ml.p3.8xlarge",
        environment={}, python="py", gpus=(0, 1, 2, 3),
    )  # fmt: skip
    hosts = ("algo-1", "algo-2")
    first, second = (Host(spec, name, hosts).environment() for name in hosts)
    assert (first["CUDA_VISIBLE_DEVICES"], second["CUDA_VISIBLE_DEVICES"]) == ("0,1", "2,3")
    assert first["SM_NUM_GPUS"] == "2"
    cpu_only = JobSpec(**{**spec.__dict__, "gpus": ()})
    assert Host(cpu_only, "algo-1", hosts).environment()["SM_NUM_GPUS"] == "0"
