"""SageMaker training jobs through boto3: the user's script runs in its sandboxes, reads S3 data,
its model lands in S3; statuses, logs, metrics, failures, stops, limits and IAM as on AWS."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import zipfile

import pytest
from botocore.exceptions import ClientError
from tests.integration.support.roles import service_role
from tests.integration.support.training import (
    ensure_bucket,
    job_request,
    read_model,
    unique,
    upload_code,
    wait_done,
    wait_for,
)

BUCKET = "sagemaker-training-tests"

INTROSPECT = r"""
import argparse, json, os, sys, boto3
parser = argparse.ArgumentParser()
parser.add_argument("--batch_size", type=int, default=1)
parser.add_argument("--learning_rate", type=float, default=0.1)
parser.add_argument("--model-dir", type=str, default=os.environ["SM_MODEL_DIR"])
args = parser.parse_args()
train = os.environ["SM_CHANNEL_TRAINING"]
files = sorted(os.path.relpath(os.path.join(d, f), train) for d, _, fs in os.walk(train) for f in fs)
for epoch in range(3):
    print(f"epoch {epoch}: Testing Loss: {1.0 / (epoch + 1):.3f}", flush=True)
seen = {
    "args": vars(args), "argv": sys.argv[1:], "files": files, "cwd": os.getcwd(),
    "hosts": json.loads(os.environ["SM_HOSTS"]), "host": os.environ["SM_CURRENT_HOST"],
    "hps_file": json.load(open("/opt/ml/input/config/hyperparameters.json")),
    "resource": json.load(open("/opt/ml/input/config/resourceconfig.json")),
    "caller": boto3.client("sts").get_caller_identity()["Arn"],
    "state_visible": os.path.exists(os.environ.get("KENNEL_PROBE", "/nonexistent")),
    "hostname": __import__("socket").gethostname(),
}
with open("/opt/ml/model/seen.json", "w") as fh:
    json.dump(seen, fh)
os.makedirs("/opt/ml/output/data", exist_ok=True)
open("/opt/ml/output/data/extra.txt", "w").write("extra output")
"""


@pytest.fixture(scope="module")
def env(cloud):
    s3 = cloud.client("s3")
    ensure_bucket(s3, BUCKET)
    for name in ("a/1.txt", "a/2.txt", "b/3.txt"):
        s3.put_object(Bucket=BUCKET, Key=f"data/{name}", Body=name.encode())
    role = service_role(cloud)
    cloud.client("iam").attach_role_policy(
        RoleName="SageMakerRole", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    )  # as the seeds' notebook role: S3 access to buckets whose name contains "sagemaker"
    return {"sm": cloud.client("sagemaker"), "s3": s3, "role": role, "logs": cloud.client("logs")}


def _create(env, name, files, **kwargs):
    code = upload_code(env["s3"], BUCKET, name, files)
    kwargs.setdefault("channels", {"training": f"s3://{BUCKET}/data/"})
    env["sm"].create_training_job(**job_request(name, env["role"], BUCKET, code, **kwargs))


def test_a_job_runs_the_script_and_its_model_lands_in_s3(env, cloud):
    name = unique("introspect")
    _create(
        env, name, {"train.py": INTROSPECT}, hyperparameters={"batch_size": "64", "learning_rate": 0.05},
        metric_definitions=[{"Name": "Test Loss", "Regex": r"Testing Loss: ([0-9\.]+)"}],
    )  # fmt: skip
    job = wait_done(env["sm"], name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed",
    ]  # fmt: skip
    assert all(t["StatusMessage"] for t in job["SecondaryStatusTransitions"])
    assert job["TrainingTimeInSeconds"] >= 1 and job["BillableTimeInSeconds"] >= 1
    assert job["OutputDataConfig"]["KmsKeyId"] == ""
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("pytorch-training:1.4.0-cpu-py3")
    assert job["FinalMetricDataList"][0]["MetricName"] == "Test Loss"
    assert job["FinalMetricDataList"][0]["Value"] == pytest.approx(0.333)
    model = read_model(env["s3"], job["ModelArtifacts"]["S3ModelArtifacts"])
    seen = json.loads(model["seen.json"])
    assert seen["args"]["batch_size"] == 64 and seen["args"]["learning_rate"] == 0.05
    assert seen["argv"] == ["--batch_size", "64", "--learning_rate", "0.05"]
    assert seen["files"] == ["a/1.txt", "a/2.txt", "b/3.txt"]
    assert seen["cwd"] == "/opt/ml/code" and seen["host"] == "algo-1" and seen["hosts"] == ["algo-1"]
    assert seen["hps_file"]["batch_size"] == '"64"'
    assert seen["resource"]["current_host"] == "algo-1" and seen["hostname"] == "algo-1"
    assert seen["caller"] == "arn:aws:sts::000000000000:assumed-role/SageMakerRole/SageMaker"
    output = read_model(env["s3"], f"s3://{BUCKET}/{name}/output/output.tar.gz")
    assert output["extra.txt"] == b"extra output"
    streams = env["logs"].describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
    )["logStreams"]
    assert len(streams) == 1 and streams[0]["logStreamName"].startswith(f"{name}/algo-1-")
    events = env["logs"].get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=streams[0]["logStreamName"],
        startFromHead=True,
    )["events"]
    assert [e["message"] for e in events][:3] == [
        f"epoch {i}: Testing Loss: {1 / (i + 1):.3f}" for i in range(3)
    ]


FAILING = """
import os, sys
print("about to fail")
if os.environ.get("WRITE_FAILURE"):
    open("/opt/ml/output/failure", "w").write("ValueError: the learning rate is negative")
sys.exit(3)
"""


@pytest.mark.parametrize("with_file", [False, True])
def test_a_failing_script_fails_the_job_with_its_reason(env, with_file):
    name = unique("failing")
    _create(env, name, {"train.py": FAILING}, Environment={"WRITE_FAILURE": "1"} if with_file else {})
    job = wait_done(env["sm"], name)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["SecondaryStatus"] == "Failed"
    if with_file:
        assert job["FailureReason"] == "AlgorithmError: ValueError: the learning rate is negative"
    else:
        assert job["FailureReason"].startswith("AlgorithmError: ExecuteUserScriptError:\nExitCode 3")
        assert "about to fail" in job["FailureReason"]


SLOW = """
import os, signal, sys, time
def bye(*_):
    open("/opt/ml/model/saved-on-sigterm.txt", "w").write("saved")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("started", flush=True)
time.sleep(120)
"""


def test_stop_sends_sigterm_and_keeps_what_was_saved(env):
    name = unique("stopped")
    _create(env, name, {"train.py": SLOW})
    wait_for(env["sm"], name, "Training")
    for _ in range(50):  # the script prints once its handler is in place
        if "started" in json.dumps(env["logs"].filter_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
        )["events"]):  # fmt: skip
            break
        __import__("time").sleep(0.1)
    env["sm"].stop_training_job(TrainingJobName=name)
    assert env["sm"].describe_training_job(TrainingJobName=name)["TrainingJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    job = wait_done(env["sm"], name)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")
    model = read_model(env["s3"], job["ModelArtifacts"]["S3ModelArtifacts"])
    assert model["saved-on-sigterm.txt"] == b"saved"
    with pytest.raises(ClientError) as again:
        env["sm"].stop_training_job(TrainingJobName=name)
    assert again.value.response["Error"]["Code"] == "ValidationException"


def test_max_runtime_stops_the_job(env):
    name = unique("overtime")
    _create(env, name, {"train.py": SLOW}, max_runtime=2)
    job = wait_done(env["sm"], name, timeout_s=60)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")


def test_bad_requests_get_aws_errors(env):
    sm = env["sm"]
    code = upload_code(env["s3"], BUCKET, "bad", {"train.py": "print(1)"})
    with pytest.raises(ClientError) as underscore:
        sm.create_training_job(**job_request("pytorch_dog_hpo-1", env["role"], BUCKET, code))
    assert underscore.value.response["Error"]["Code"] == "ValidationException"
    assert (
        "trainingJobName" in underscore.value.response["Error"]["Message"]
        or "TrainingJobName" in (underscore.value.response["Error"]["Message"])
    )
    with pytest.raises(ClientError) as regex:
        sm.create_training_job(**job_request(
            unique("regex"), env["role"], BUCKET, code, metric_definitions=[{"Name": "x", "Regex": "loss: ("}]
        ))  # fmt: skip
    assert regex.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as too_many:
        sm.create_training_job(**job_request(unique("huge"), env["role"], BUCKET, code, instance_count=500))
    assert too_many.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    name = unique("dup")
    sm.create_training_job(**job_request(name, env["role"], BUCKET, code))
    with pytest.raises(ClientError) as duplicate:
        sm.create_training_job(**job_request(name, env["role"], BUCKET, code))
    assert duplicate.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as missing:
        sm.describe_training_job(TrainingJobName="no-such-job")
    assert missing.value.response["Error"]["Code"] == "ValidationException"
    wait_done(sm, name)


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"other.py": "print(1)"}, "the entry point 'train.py' is not in"),
        ({"../evil.py": "print(1)", "train.py": "print(1)"}, "cannot be used"),
    ],
)
def test_bad_source_archives_fail_the_job(env, files, fragment):
    name = unique("badsrc")
    _create(env, name, files)
    job = wait_done(env["sm"], name)
    assert job["TrainingJobStatus"] == "Failed" and fragment in job["FailureReason"]


def test_an_empty_channel_fails_like_aws(env):
    name = unique("empty")
    _create(env, name, {"train.py": "print(1)"}, channels={"training": f"s3://{BUCKET}/nothing-here/"})
    job = wait_done(env["sm"], name)
    assert job["FailureReason"].startswith('ClientError: No S3 objects found under S3 URL "s3://')


def test_roles_are_checked(env, cloud):
    iam = cloud.client("iam")
    # A role SageMaker may assume but that may not read the bucket: the job fails naming the action.
    blind = service_role(cloud, "BlindSageMakerRole")
    name = unique("blind")
    code = upload_code(env["s3"], BUCKET, name, {"train.py": "print(1)"})
    env["sm"].create_training_job(**job_request(
        name, blind, BUCKET, code, channels={"training": f"s3://{BUCKET}/data/"}
    ))  # fmt: skip
    job = wait_done(env["sm"], name)
    assert job["TrainingJobStatus"] == "Failed"
    assert "AccessDenied" in job["FailureReason"] and "s3:GetObject" in job["FailureReason"]
    # A caller who may create training jobs but not pass the role.
    user = unique("trainer")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="jobs", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sagemaker:*TrainingJob*", "Resource": "*"}],
    }))  # fmt: skip
    key = iam.create_access_key(UserName=user)["AccessKey"]
    sm = cloud.client("sagemaker", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    with pytest.raises(ClientError) as denied:
        sm.create_training_job(**job_request(unique("nopass"), env["role"], BUCKET, code))
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "iam:PassRole" in denied.value.response["Error"]["Message"]
    # A role that trusts Lambda, not SageMaker: refused before any job exists, even for the admin.
    lambda_only = service_role(cloud, unique("LambdaOnly"), "lambda.amazonaws.com")
    refused = unique("untrusted")
    with pytest.raises(ClientError) as untrusted:
        env["sm"].create_training_job(**job_request(refused, lambda_only, BUCKET, code))
    assert untrusted.value.response["Error"]["Code"] == "ValidationException"
    assert untrusted.value.response["Error"]["Message"] == (
        f"Could not assume role {lambda_only}. Please ensure that the role exists and allows principal "
        "'sagemaker.amazonaws.com' to assume the role."
    )
    assert refused not in [
        j["TrainingJobName"] for j in env["sm"].list_training_jobs()["TrainingJobSummaries"]
    ]


def test_list_filters_sorts_pages_and_tags(env):
    sm = env["sm"]
    code = upload_code(env["s3"], BUCKET, "listing", {"train.py": "print('hi')"})
    names = [unique("listing") for _ in range(3)]
    for name in names:
        sm.create_training_job(
            **job_request(name, env["role"], BUCKET, code, Tags=[{"Key": "team", "Value": "dogs"}])
        )
    for name in names:
        wait_done(sm, name)
    seen, token = [], None
    while True:
        more = {"NextToken": token} if token else {}
        page = sm.list_training_jobs(
            NameContains="listing-", MaxResults=2, SortBy="Name", SortOrder="Ascending", **more
        )
        seen += [s["TrainingJobName"] for s in page["TrainingJobSummaries"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == sorted(names)
    completed = sm.list_training_jobs(StatusEquals="Completed", NameContains="listing-", MaxResults=100)
    assert {s["TrainingJobName"] for s in completed["TrainingJobSummaries"]} >= set(names)
    arn = sm.describe_training_job(TrainingJobName=names[0])["TrainingJobArn"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "dogs"}]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}])
    sm.delete_tags(ResourceArn=arn, TagKeys=["team"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "dev"}]


RULES_SCRIPT = """
import time
for epoch in range(6):
    print(f"Train Loss: {1.0 / (epoch + 1):.4f}", flush=True)
    print(f"Testing Loss: {1.0 / (epoch + 1) + 0.5 * epoch:.4f}", flush=True)
    time.sleep(0.3)
"""
RULES_IMAGE = "503895931360.dkr.ecr.us-east-1.amazonaws.com/sagemaker-debugger-rules:latest"


def _rule(name: str) -> dict:
    return {
        "RuleConfigurationName": name,
        "RuleEvaluatorImage": RULES_IMAGE,
        "RuleParameters": {"rule_to_invoke": name},
    }


def test_debugger_and_profiler_rules(env, cloud):
    name = unique("rules")
    _create(
        env, name, {"train.py": RULES_SCRIPT},
        metric_definitions=[
            {"Name": "Train Loss", "Regex": r"Train Loss: ([0-9\\.]+)"},
            {"Name": "Test Loss", "Regex": r"Testing Loss: ([0-9\\.]+)"},
        ],
        DebugHookConfig={"S3OutputPath": f"s3://{BUCKET}/", "CollectionConfigurations": [
            {"CollectionName": "gradients", "CollectionParameters": {"save_interval": "500"}}]},
        DebugRuleConfigurations=[_rule("Overfit"), _rule("LossNotDecreasing"), _rule("VanishingGradient")],
        ProfilerConfig={"S3OutputPath": f"s3://{BUCKET}/", "ProfilingIntervalInMilliseconds": 500},
        ProfilerRuleConfigurations=[_rule("ProfilerReport")],
    )  # fmt: skip
    running = env["sm"].describe_training_job(TrainingJobName=name)
    assert {s["RuleEvaluationStatus"] for s in running["DebugRuleEvaluationStatuses"]} == {"InProgress"}
    job = wait_done(env["sm"], name)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    verdicts = {s["RuleConfigurationName"]: s for s in job["DebugRuleEvaluationStatuses"]}
    assert verdicts["Overfit"]["RuleEvaluationStatus"] == "IssuesFound"
    assert verdicts["Overfit"]["StatusDetails"].startswith("RuleEvaluationConditionMet")
    assert verdicts["LossNotDecreasing"]["RuleEvaluationStatus"] == "NoIssuesFound"
    assert verdicts["VanishingGradient"]["RuleEvaluationStatus"] == "Error"
    assert job["ProfilerRuleEvaluationStatuses"][0]["RuleEvaluationStatus"] == "NoIssuesFound"
    assert job["ProfilingStatus"] == "Enabled" and job["DebugHookConfig"]["S3OutputPath"] == f"s3://{BUCKET}/"
    key = f"{name}/rule-output/ProfilerReport/profiler-output/profiler-report.html"
    page = env["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    assert "Profiler report" in page and "algo-1" in page and "data:image/png;base64," in page
    cpu = cloud.client("cloudwatch").list_metrics(
        Namespace="/aws/sagemaker/TrainingJobs", MetricName="CPUUtilization"
    )
    assert any(d["Value"] == f"{name}/algo-1" for m in cpu["Metrics"] for d in m["Dimensions"])


FORKER = """
import subprocess, sys
child = subprocess.Popen(["sleep", "301.25"], start_new_session=True)  # left behind on purpose
open("/opt/ml/model/child.txt", "w").write(str(child.pid))
chunk = "x" * 1023
for _ in range(20 * 1024):  # 20 MiB of output, past the per-host log budget
    print(chunk)
print("done printing", flush=True)
"""


def test_children_end_with_the_host_and_floods_are_cut(env):
    name = unique("forker")
    _create(env, name, {"train.py": FORKER})
    job = wait_done(env["sm"], name, timeout_s=120)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    events = env["logs"].filter_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/", limit=10_000
    )
    assert any("past the per-host limit is dropped" in e["message"] for e in events["events"]) or events.get(
        "nextToken"
    )
    leftover = subprocess.run(["pgrep", "-f", "sleep 301.25"], capture_output=True, text=True).stdout.split()
    assert leftover == [], "a process a training script left behind outlived its host"


def _wheel() -> bytes:
    files = {
        "tinypkg/__init__.py": "VALUE = 42\n",
        "tinypkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n",
        "tinypkg-0.1.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: kennel-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    files["tinypkg-0.1.dist-info/RECORD"] = (
        "".join(f"{n},,\n" for n in files) + "tinypkg-0.1.dist-info/RECORD,,\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return buffer.getvalue()


def test_requirements_are_installed_into_an_environment_per_digest(env):
    name = unique("reqs")
    script = "import tinypkg\nprint('tinypkg says', tinypkg.VALUE, flush=True)\n"
    wheel = _wheel()
    code = source_tar_bytes(
        {"train.py": script.encode(), "requirements.txt": b"--no-index\n./tinypkg-0.1-py3-none-any.whl\n",
         "tinypkg-0.1-py3-none-any.whl": wheel}
    )  # fmt: skip
    key = f"{name}/source/sourcedir.tar.gz"
    env["s3"].put_object(Bucket=BUCKET, Key=key, Body=code)
    env["sm"].create_training_job(**job_request(name, env["role"], BUCKET, f"s3://{BUCKET}/{key}"))
    job = wait_done(env["sm"], name, timeout_s=120)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    events = env["logs"].filter_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
    )
    assert any(e["message"] == "tinypkg says 42" for e in events["events"])


def source_tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
