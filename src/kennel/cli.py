"""``kennel`` — the command line. Each command is a thin shell over a library function."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Kennel: the AWS ML workflow for real on one machine.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets: fetch the dog images, synthesise an offline stand-in, inspect.")
app.add_typer(data_app, name="data")
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
) -> None:
    """Evaluate a trained model on a split: accuracy, top-5, per-class accuracy, confusion matrix."""
    from kennel.workflows import evaluate_model

    report = evaluate_model(model, data_dir, split=split, output_dir=output_dir, runtime=runtime)
    console.print_json(
        json.dumps({k: v for k, v in report.items() if k in ("count", "loss", "accuracy", "top5_accuracy")})
    )
    console.print(f"report: {output_dir / 'report.json'}; plot: {output_dir / 'confusion_matrix.png'}")


@app.command("package")
def package(
    model_dir: Path = typer.Argument(..., help="model directory written by training"),
    out: Path = typer.Option(Path("runs/model.tar.gz"), help="archive to write"),
) -> None:
    """Pack a model directory into a SageMaker-layout model.tar.gz."""
    from kennel.ml.artifact import package_model

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


@app.command("demo")
def demo(
    workdir: Path = typer.Option(Path("runs/demo"), help="where data, model and plots go"),
    epochs: int = typer.Option(6, help="training epochs"),
) -> None:
    """Offline end to end: synthetic data → train → evaluate → plots → package → predict."""
    from kennel.workflows import run_demo

    run_demo(workdir, epochs=epochs, console=console)


if __name__ == "__main__":
    app()
