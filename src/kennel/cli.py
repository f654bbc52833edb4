"""``kennel`` — the command line. Each command is a thin shell over a library function."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from kennel.demo.recipe import DEFAULT_RECIPE, RECIPES
from kennel.jobs_cli import jobs_app
from kennel.tuning_cli import tuning_app

app = typer.Typer(help="Kennel: the AWS ML workflow for real on one machine.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets: fetch the dog images, synthesise an offline stand-in, inspect.")
app.add_typer(data_app, name="data")
iam_app = typer.Typer(help="IAM access advisor over the local cloud's audit trail.")
app.add_typer(iam_app, name="iam")
app.add_typer(jobs_app, name="jobs")
app.add_typer(tuning_app, name="tuning")
console = Console()


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument("dog-images", help="dataset name (only dog-images)"),
    dest: Path = typer.Option(Path("data/dogImages"), help="where train/ valid/ test/ go"),
    url: str = typer.Option("", help="override the download URL (a mirror)"),
    sha256: str = typer.Option("", help="pin the archive's SHA-256"),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Download and safely extract the original dogImages archive (resumable, verified)."""
    from kennel.ml.download import DOG_IMAGES_URL, fetch_dog_images

    if name != "dog-images":
        raise typer.BadParameter(f"unknown dataset {name!r}; only 'dog-images' is known")
    root = fetch_dog_images(
        dest, url=url or DOG_IMAGES_URL, expected_sha256=sha256 or None, progress=not quiet
    )
    _print_manifest(root)


@data_app.command("synth")
def data_synth(
    dest: Path = typer.Option(..., help="output directory"),
    classes: int = typer.Option(5, help="number of classes"),
    per_class: int = typer.Option(40, help="training images per class (valid/test get a quarter)"),
    size: int = typer.Option(96, help="typical short side in pixels"),
    seed: int = typer.Option(0, help="random seed; same seed → same files"),
) -> None:
    """Write a learnable synthetic dataset in the dogImages layout (offline stand-in)."""
    from kennel.ml.synth import SynthSpec, generate

    generate(dest, SynthSpec(classes=classes, per_class=per_class, size=size, seed=seed), progress=True)
    _print_manifest(dest)


@data_app.command("manifest")
def data_manifest(root: Path = typer.Argument(..., help="ImageFolder root with train/ valid/ test/")) -> None:
    """Count images, list classes and hash the contents (writes manifest.json)."""
    _print_manifest(root)


def _print_manifest(root: Path) -> None:
    from kennel.ml.data import scan_dataset

    info = scan_dataset(root)
    table = Table(title=f"{root}  ({'synthetic' if info.synthetic else 'real'} data)")
    table.add_column("split")
    table.add_column("images", justify="right")
    table.add_column("non-image files skipped", justify="right")
    for name, split in info.splits.items():
        table.add_row(name, str(len(split.samples)), str(split.non_image_files))
    console.print(table)
    console.print(
        f"{len(info.classes)} classes, e.g. {', '.join(info.labels[:3])}; "
        f"content hash {info.content_hash[:16]}"
    )


@app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def train(ctx: typer.Context) -> None:
    """Train the classifier (all options of `python -m kennel.ml.train --help`)."""
    from kennel.ml.train import main

    raise typer.Exit(main(ctx.args))


@app.command("evaluate")
def evaluate(
    model: Path = typer.Argument(..., help="model directory or model.tar.gz"),
    data_dir: Path = typer.Option(..., help="ImageFolder root"),
    split: str = typer.Option("test", help="train, valid or test"),
    output_dir: Path = typer.Option(Path("runs/eval"), help="report.json and confusion_matrix.png go here"),
    runtime: str = typer.Option("torch", help="torch, onnxruntime, openvino-f32, openvino, auto"),
    precision: str = typer.Option(
        "fp32", help="fp32, bf16 or int8: also measure that precision against the runtime's fp32"
    ),
) -> None:
    """Evaluate a trained model on a split: accuracy, top-5, per-class accuracy, confusion matrix."""
    from kennel.workflows import evaluate_model

    report = evaluate_model(
        model, data_dir, split=split, output_dir=output_dir, runtime=runtime, precision=precision
    )
    shown = ("count", "loss", "accuracy", "top5_accuracy", "precision", "exact_accuracy", "agreement",
             "gate_passed")  # fmt: skip
    console.print_json(json.dumps({k: v for k, v in report.items() if k in shown}))
    console.print(f"report: {output_dir / 'report.json'}; plot: {output_dir / 'confusion_matrix.png'}")


@app.command("package")
def package(
    model_dir: Path = typer.Argument(..., help="model directory written by training"),
    out: Path = typer.Option(Path("runs/model.tar.gz"), help="archive to write"),
    data_dir: Path | None = typer.Option(
        None, help="ImageFolder root: store a validation sample (the precision gate's proof) first"
    ),
    split: str = typer.Option("valid", help="the split the sample comes from"),
    sample_size: int = typer.Option(48, min=1, max=512, help="images in the sample"),
) -> None:
    """Pack a model directory into a SageMaker-layout model.tar.gz."""
    from kennel.ml.artifact import package_model, read_meta

    if data_dir is not None:
        from kennel.ml import calibration
        from kennel.ml.data import scan_dataset

        meta, info = read_meta(model_dir), scan_dataset(data_dir)
        if split not in info.splits or info.classes != meta.classes:
            raise SystemExit(f"{data_dir} has no {split}/ split with the model's classes")
        sample = calibration.write_from_files(
            model_dir, info.splits[split].samples, meta.preprocess, count=sample_size
        )
        console.print(f"validation sample: {sample}")
    path = package_model(model_dir, out)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


@app.command("export")
def export(
    model_dir: Path = typer.Argument(..., help="model directory"),
    atol: float = typer.Option(1e-4, help="parity tolerance for the logits"),
) -> None:
    """Export the model to ONNX and check the logits against PyTorch."""
    from kennel.ml.export import export_onnx

    result = export_onnx(model_dir, atol=atol)
    console.print(f"wrote {result.path}; max |logit difference| vs PyTorch {result.max_abs_diff:.2e}")


@app.command("predict")
def predict(
    model: Path = typer.Argument(..., help="model directory or model.tar.gz"),
    image: Path = typer.Argument(..., help="an image file"),
    top_k: int = typer.Option(3, help="how many breeds to show"),
    runtime: str = typer.Option("torch", help="torch, onnxruntime, openvino-f32, openvino, auto"),
) -> None:
    """Classify one image with the SageMaker handler, as an endpoint would."""
    from kennel.workflows import predict_image

    table = Table(title=f"{image.name}")
    table.add_column("rank", justify="right")
    table.add_column("breed")
    table.add_column("probability", justify="right")
    for rank, row in enumerate(predict_image(model, image, top_k=top_k, runtime=runtime), start=1):
        table.add_row(str(rank), row["label"], f"{row['score']:.3f}")
    console.print(table)


StateDir = typer.Option(
    None, "--state-dir", envvar="KENNEL_STATE_DIR", help="state directory (default .kennel)"
)


def _settings(state_dir: Path | None, port: int | None = None, time_scale: float | None = None):
    from kennel.settings import Settings

    return Settings.from_env(state_dir=state_dir, port=port, time_scale_s=time_scale)


@app.command("up")
def up(
    port: int = typer.Option(4566, help="gateway port on 127.0.0.1 (0 picks a free one)"),
    state_dir: Path | None = StateDir,
    detach: bool = typer.Option(False, "--detach", "-d", help="run in the background"),
    time_scale: float | None = typer.Option(
        None, "--time-scale", help="seconds in one simulated minute (env KENNEL_TIME_SCALE; default 60)"
    ),
) -> None:
    """Start the local cloud (idempotent: an already running gateway is left as it is)."""
    from kennel.cloud import server

    settings = _settings(state_dir, port, time_scale)
    running = server.read_running(settings.state_dir)
    if running is not None:
        console.print(f"Kennel is already running at {running.endpoint} (pid {running.pid})")
        return
    if detach:
        running = server.start_detached(settings)
        console.print(
            f"Kennel is up at {running.endpoint} (pid {running.pid}); `kennel env` prints credentials"
        )
        return
    console.print(f"Kennel starting at {settings.endpoint_url} (Ctrl-C stops it)")
    server.serve(settings)


@app.command("down")
def down(state_dir: Path | None = StateDir) -> None:
    """Stop everything `kennel up` started (by PID)."""
    from kennel.cloud import server

    settings = _settings(state_dir)
    stopped = server.stop(settings.state_dir)
    console.print(f"stopped pid {stopped.pid}" if stopped else "Kennel was not running")


@app.command("status")
def status(state_dir: Path | None = StateDir) -> None:
    """Is the gateway running, where, and is it healthy?"""
    from kennel.cloud import server
    from kennel.runtime.sandbox import UNCONFINED_NOTE

    settings = _settings(state_dir)
    running = server.read_running(settings.state_dir)
    if running is None:
        console.print(f"Kennel is not running (state in {settings.state_dir})")
        raise typer.Exit(1)
    health = "healthy" if server.healthy(running.port) else "NOT answering"
    uptime = time.time() - running.started
    console.print(f"Kennel at {running.endpoint}: pid {running.pid}, up {uptime:.0f} s, {health}")
    if running.sandboxed:
        console.print("User code: sandboxed (bubblewrap)")
    else:
        console.print(f"User code: {UNCONFINED_NOTE}", style="bold red")
    from kennel.cloud.objectstore.seaweed import running_pid

    store = running_pid(settings.state_dir / "objects")
    s3 = f"SeaweedFS pid {store}" if store else "SeaweedFS not running (it starts on the first S3 request)"
    console.print(f"S3: {s3}; data in {settings.state_dir / 'objects'}")


@app.command("env")
def env(
    state_dir: Path | None = StateDir,
    role: str | None = typer.Option(
        None, "--role", help="print a session of this role instead (what get_execution_role() needs)"
    ),
) -> None:
    """Print the `export` lines that point AWS clients at Kennel as the admin user (or as a role)."""
    from kennel.cloud import server
    from kennel.cloud.cloudstate import admin_credentials

    settings = _settings(state_dir)
    running = server.read_running(settings.state_dir)
    port = running.port if running else settings.port
    creds = admin_credentials(settings)
    if creds is None:
        console.print("# no state yet: run `kennel up` first", style="red")
        raise typer.Exit(1)
    endpoint = f"http://127.0.0.1:{port}"
    print(f"export AWS_ENDPOINT_URL={endpoint}")
    print(f"export AWS_DEFAULT_REGION={settings.region}")
    if role:
        from kennel.cloud.roleenv import RoleEnvError, role_credentials

        if running is None:
            console.print("# Kennel is not running: start it with `kennel up`", style="red")
            raise typer.Exit(1)
        try:
            session = role_credentials(settings, endpoint, creds.access_key_id, creds.secret_access_key, role)
        except RoleEnvError as exc:
            console.print(f"# {exc}", style="red")
            raise typer.Exit(1) from None
        print(f"export AWS_ACCESS_KEY_ID={session['AccessKeyId']}")
        print(f"export AWS_SECRET_ACCESS_KEY={session['SecretAccessKey']}")
        print(f"export AWS_SESSION_TOKEN={session['SessionToken']}")
        print("unset AWS_PROFILE")
        return
    print(f"export AWS_ACCESS_KEY_ID={creds.access_key_id}")
    print(f"export AWS_SECRET_ACCESS_KEY={creds.secret_access_key}")
    print("unset AWS_SESSION_TOKEN AWS_PROFILE")


@app.command("notebook")
def notebook(
    path: Path = typer.Argument(Path("."), help="directory Jupyter serves, or the notebook --execute runs"),
    role: str = typer.Option("SageMakerRole", "--role", help="the kernel's execution role"),
    execute: bool = typer.Option(False, "--execute", help="run the notebook headless (nbclient) and exit"),
    output: Path | None = typer.Option(None, help="--execute: executed copy (default NAME.out.ipynb)"),
    cell_timeout: int = typer.Option(1800, help="--execute: seconds one cell may take"),
    port: int = typer.Option(8888, help="Jupyter's port on 127.0.0.1"),
    state_dir: Path | None = StateDir,
) -> None:
    """Jupyter whose kernels talk to Kennel as an execution role (notebooks written for AWS, unchanged)."""
    import os

    from kennel.cloud import server
    from kennel.cloud.cloudstate import admin_credentials
    from kennel.cloud.roleenv import RoleEnvError, role_credentials
    from kennel.notebook import NotebookError, kernel_env, prepare, serve
    from kennel.notebook import execute as run_headless

    settings = _settings(state_dir)
    running = server.read_running(settings.state_dir)
    creds = admin_credentials(settings)
    if running is None or creds is None:
        console.print("Kennel is not running: start it with `kennel up --detach`", style="red")
        raise typer.Exit(1)
    endpoint = f"http://127.0.0.1:{running.port}"
    try:
        session = role_credentials(settings, endpoint, creds.access_key_id, creds.secret_access_key, role)
    except RoleEnvError as exc:
        console.print(str(exc), style="red")
        raise typer.Exit(1) from None
    env = kernel_env(prepare(settings.state_dir), endpoint, settings.region, session, dict(os.environ))
    try:
        if execute:
            out = output or path.with_name(f"{path.stem}.out.ipynb")
            console.print(f"Running {path} headless as role {role}; executed copy: {out}")
            run_headless(path, out, env, cell_timeout)
            return
        raise typer.Exit(serve(path, env, port))
    except NotebookError as exc:
        console.print(str(exc), style="red")
        raise typer.Exit(1) from None


@iam_app.command("audit")
def iam_audit(
    state_dir: Path | None = StateDir,
    unused_days: float = typer.Option(90, help="principals idle this long are reported"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Over-broad policies, idle principals and granted-but-unused permissions."""
    from kennel.cloud.services.iam.advisor import audit_findings
    from kennel.cloud.statestore import StateStore

    settings = _settings(state_dir)
    store = StateStore(settings.db_path)
    try:
        findings = audit_findings(store, settings.account_id, unused_days=unused_days)
    finally:
        store.close()
    if as_json:
        print(json.dumps([f.__dict__ for f in findings], indent=2))
        return
    table = Table(title=f"IAM findings ({len(findings)})")
    for column in ("principal", "finding", "detail"):
        table.add_column(column)
    for f in findings:
        table.add_row(f.principal_arn, f.kind, f.detail)
    console.print(table)


@iam_app.command("generate-policy")
def iam_generate_policy(
    principal_arn: str = typer.Argument(..., help="user or role ARN"),
    state_dir: Path | None = StateDir,
) -> None:
    """Print a least-privilege policy built from the principal's recorded, allowed requests."""
    from kennel.cloud.services.iam.advisor import generate_policy, policy_json
    from kennel.cloud.statestore import StateStore

    store = StateStore(_settings(state_dir).db_path)
    try:
        print(policy_json(generate_policy(store, principal_arn)))
    finally:
        store.close()


@app.command("demo")
def demo(
    workdir: Path = typer.Option(Path("runs/demo"), help="where data, model and plots go"),
    epochs: int | None = typer.Option(
        None,
        help=f"the training jobs' epochs (default {DEFAULT_RECIPE.full['epochs']}; "
        f"the tuning trials': {DEFAULT_RECIPE.trial['epochs']})",
    ),
    recipe: str = typer.Option(
        DEFAULT_RECIPE.name,
        help="lite0: pretrained EfficientNet-Lite0, head only (the seeds' transfer learning); "
        "resnet18: every layer from random weights",
    ),
    examples: Path = typer.Option(
        Path("examples/dog_breeds"), help="the seeds' Lambda function and least-privilege policy"
    ),
) -> None:
    """Offline, on a local cloud: data to S3 → tuning → training → endpoint → Lambda → IAM → autoscaling."""
    from kennel.demo.run import run_demo

    if not (examples / "lambda_function.py").is_file():
        console.print(f"{examples} has no lambda_function.py: run from the repository or pass --examples")
        raise typer.Exit(1)
    if recipe not in RECIPES:
        console.print(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
        raise typer.Exit(1)
    run_demo(workdir, epochs=epochs, examples=examples, console=console, recipe=RECIPES[recipe])


if __name__ == "__main__":
    app()
