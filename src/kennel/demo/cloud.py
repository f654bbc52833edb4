"""``make demo`` on a local cloud, in the seeds' order and through the real AWS APIs only.

The dataset goes to S3; a hyperparameter tuning job picks the learning rate and batch size; training
jobs on one instance and on two (one DDP job) train with the best of them; the one-instance job's model
is deployed as a SageMaker endpoint with two instances and invoked through boto3; the seeds' Lambda
function goes in front of it under least privilege; reserved concurrency throttles; and the endpoint
scales with target tracking under a step load (plot: scaling timeline PNG).
"""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from botocore.exceptions import ClientError
from rich.console import Console

from kennel.cloud import server
from kennel.cloud.cloudstate import admin_credentials
from kennel.demo import training, tuning
from kennel.demo.loadtest import Clients, StepLoad, step_load
from kennel.demo.recipe import Recipe
from kennel.demo.timeline import plot
from kennel.settings import Settings
from kennel.workflows import predict_image

ACCOUNT = "000000000000"
SLEEPER = "import time\n\ndef handler(event, context):\n    time.sleep(1)\n    return {'slept': 1}\n"


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _deploy(sm, name: str, model_url: str, instances: int) -> float:
    sm.create_model(
        ModelName=name,
        PrimaryContainer={
            "Image": "pytorch-inference:2.0-cpu",
            "ModelDataUrl": model_url,
            "Environment": {"KENNEL_ALLOW_PRIVATE_URLS": "true"},
        },
        ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/DogBreedsSageMaker",
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": instances,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    started = time.time()
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 600}
    )
    return time.time() - started


def _lambda_role(iam, name: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.attach_role_policy(
        RoleName=name, PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    )
    return arn


def _invoke(fn, name: str, event: dict) -> tuple[dict, str | None]:
    answer = fn.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return json.loads(answer["Payload"].read()), answer.get("FunctionError")


def fresh_cloud(state_dir: Path) -> bool:
    """The demo runs from the top on a new local cloud each time (its jobs, endpoints and functions
    have fixed names, which a second run on the same state would find taken): a gateway a previous run
    left running there is stopped by its recorded PID, then its state is removed. True if there was one."""
    if not state_dir.exists():
        return False
    server.stop(state_dir)
    shutil.rmtree(state_dir)
    return True


def run_cloud_demo(
    workdir: Path,
    data: Path,
    recipe: Recipe,
    epochs: int | None,
    image: Path,
    labels: list[str],
    examples: Path,
    console: Console,
) -> None:
    """``examples``: the directory with the seeds' Lambda function and least-privilege policy."""
    settings = Settings(state_dir=workdir / "cloud", port=server.free_port(), time_scale_s=2.0)
    console.rule("2. kennel up: the local cloud (one simulated minute = 2 s for the autoscaling part)")
    if fresh_cloud(settings.state_dir):
        console.print(f"a new local cloud: the previous run's ({settings.state_dir}) was removed")
    running = server.start_detached(settings)
    try:
        creds = admin_credentials(settings)
        assert creds is not None
        clients = Clients(settings.endpoint_url, creds.access_key_id, creds.secret_access_key)
        console.print(
            f"gateway {running.endpoint}, pid {running.pid}; caller "
            f"{clients('sts').get_caller_identity()['Arn']}"
        )
        console.rule("3. the dataset to S3")
        channel = training.prepare(clients, data, console)
        console.rule(f"4. a hyperparameter tuning job ({recipe.max_trials} short trials, {recipe.name})")
        best = tuning.tune(clients, channel, recipe, console, workdir / "output")
        hyperparameters = recipe.training_hyperparameters(best, epochs)
        console.rule(f"5. training jobs with the best hyperparameters: 1 instance, then 2 ({recipe.name})")
        console.print(", ".join(f"{k} {v}" for k, v in hyperparameters.items()), highlight=False)
        name = f"dog-breeds-{recipe.name}"
        job = training.train(clients, channel, hyperparameters, console, name=name)
        training.train(clients, channel, hyperparameters, console, name=f"{name}-2x", instances=2,
                       distributed=True)  # fmt: skip
        archive = training.fetch_outputs(clients, job, workdir)
        console.rule("6. predict one test image through the SageMaker handler (model.tar.gz from S3)")
        for rank, row in enumerate(predict_image(archive, image, top_k=3), start=1):
            console.print(f"  {rank}. {row['label']:<28} {row['score']:.3f}")
        _endpoint_part(clients, job["ModelArtifacts"]["S3ModelArtifacts"], image, console)
        _lambda_part(clients, image, labels, console, workdir, examples)
        _autoscaling_part(clients, settings, workdir, console)
    finally:
        server.stop(settings.state_dir)
        console.print("kennel down: gateway, model servers and function environments stopped")


def _endpoint_part(clients: Clients, model_data: str, image: Path, console: Console) -> None:
    console.rule(
        "7. the training job's model_data as a SageMaker endpoint with 2 instances, invoked through boto3"
    )
    seconds = _deploy(clients("sagemaker"), "dog-breeds", model_data, 2)
    described = clients("sagemaker").describe_endpoint(EndpointName="dog-breeds")
    variant = described["ProductionVariants"][0]
    console.print(f"dog-breeds InService in {seconds:.1f} s with {variant['CurrentInstanceCount']} instances")
    answer = clients("sagemaker-runtime").invoke_endpoint(
        EndpointName="dog-breeds",
        ContentType="image/jpeg",
        Accept="application/json",
        CustomAttributes="top_k=3",
        Body=image.read_bytes(),
    )
    console.print(f"{image.name} → served by variant {answer['InvokedProductionVariant']}:")
    for rank, row in enumerate(json.loads(answer["Body"].read()), start=1):
        console.print(f"  {rank}. {row['label']:<28} {row['score']:.3f}")


def _lambda_part(
    clients: Clients, image: Path, labels: list[str], console: Console, workdir: Path, examples: Path
) -> None:
    console.rule("8. the seeds' Lambda function in front of the endpoint, then least privilege")
    iam, fn = clients("iam"), clients("lambda")
    role_arn = _lambda_role(iam, "dog-breeds-lambda")
    package = _zip({"lambda_function.py": (examples / "lambda_function.py").read_text()})
    clients("s3").put_object(
        Bucket=f"sagemaker-us-east-1-{ACCOUNT}", Key="dog-breeds/lambda.zip", Body=package
    )
    fn.create_function(
        FunctionName="dog-breeds",
        Runtime="python3.11",
        Role=role_arn,
        Handler="lambda_function.lambda_handler",
        Code={"S3Bucket": f"sagemaker-us-east-1-{ACCOUNT}", "S3Key": "dog-breeds/lambda.zip"},
        Timeout=60,
        MemorySize=512,
        Environment={"Variables": {"ENDPOINT_NAME": "dog-breeds"}},
    )
    fn.get_waiter("function_active_v2").wait(FunctionName="dog-breeds")
    url = _image_url(clients, image)
    payload, error = _invoke(fn, "dog-breeds", {"url": url})
    console.print(f"with AWSLambdaBasicExecutionRole only: {error}: {payload.get('errorMessage', '')[:150]}…")
    policy = json.loads((examples / "least_privilege_policy.json").read_text())
    iam.put_role_policy(
        RoleName="dog-breeds-lambda", PolicyName="invoke-dog-breeds", PolicyDocument=json.dumps(policy)
    )
    payload, error = _invoke(fn, "dog-breeds", {"url": url})
    scores = json.loads(payload["body"])
    best = max(range(len(scores)), key=scores.__getitem__)
    console.print(
        f"with sagemaker:InvokeEndpoint on that endpoint only: statusCode {payload['statusCode']}, "
        f"{len(scores)} scores, top breed {labels[best]}"
    )

    console.rule("9. reserved concurrency 5, 20 concurrent 1-second invocations")
    fn.create_function(
        FunctionName="sleeper",
        Runtime="python3.11",
        Role=role_arn,
        Handler="sleeper.handler",
        Code={"ZipFile": _zip({"sleeper.py": SLEEPER})},
        Timeout=10,
    )
    fn.get_waiter("function_active_v2").wait(FunctionName="sleeper")
    fn.put_function_concurrency(FunctionName="sleeper", ReservedConcurrentExecutions=5)

    def one(_: int) -> str:
        try:
            clients("lambda").invoke(FunctionName="sleeper", Payload=b"{}")
            return "ran"
        except ClientError as err:
            return err.response.get("Reason") or err.response["Error"]["Code"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(one, range(20)))
    counts = {o: outcomes.count(o) for o in sorted(set(outcomes))}
    console.print(f"outcomes (never more than 5 running at once; later calls reuse freed slots): {counts}")
    logs = clients("logs").filter_log_events(logGroupName="/aws/lambda/dog-breeds", filterPattern="REPORT")
    for event in logs["events"][:2]:
        console.print(f"  log: {event['message'].strip()[:140]}")


def _image_url(clients: Clients, image: Path) -> str:
    """The image as an S3 object behind a presigned URL, as on AWS: a sandboxed model server reaches
    nothing on this machine but the gateway, which serves S3 (the endpoint allows its loopback URL)."""
    s3 = clients("s3")
    bucket = f"sagemaker-us-east-1-{ACCOUNT}"
    s3.put_object(
        Bucket=bucket, Key=f"pictures/{image.name}", Body=image.read_bytes(), ContentType="image/jpeg"
    )
    return s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": f"pictures/{image.name}"})


def _autoscaling_part(clients: Clients, settings: Settings, workdir: Path, console: Console) -> None:
    console.rule("10. target-tracking autoscaling under a step load")
    period_s = max(1, round(settings.time_scale_s))
    plan = StepLoad(rate=12.0, threads=4, target=10.0, max=3, hold_s=4.0)
    report = step_load(clients, "dog-breeds", plan, period_s, console)
    path = plot(
        report.pop("timeline"),
        workdir / "output" / "scaling_timeline.png",
        title="dog-breeds: step load, target 10 invocations per instance per simulated minute",
    )
    for name, value in report.items():
        console.print(f"  {name}: {value}")
    console.print(f"timeline: {path}")
