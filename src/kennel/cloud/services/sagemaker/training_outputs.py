"""What a finished training job leaves behind: its model and output data in S3 (as the role), its
checkpoints synced, and the FailureReason AWS would write for a failed script."""

from __future__ import annotations

import logging
import shutil
import tarfile
from pathlib import Path

from kennel.cloud.services.sagemaker.jobdata import JobFailure, RoleS3, clear

log = logging.getLogger("kennel.training")


def upload_outputs(storage: RoleS3, spec: dict, name: str, hosts, scratch: Path) -> None:
    output = spec["OutputDataConfig"]
    base = output["S3OutputPath"].rstrip("/") + f"/{name}/output"
    clear(scratch)
    # AWS merges every host's /opt/ml/model; on a clash the first host (the master) wins here.
    ordered = sorted(hosts, key=lambda h: h.name, reverse=True)
    if output.get("CompressionType") == "NONE":
        merged = scratch / "model"
        for host in ordered:
            shutil.copytree(host.model_dir, merged, dirs_exist_ok=True, symlinks=False)
        storage.upload_tree(merged, f"{base}/model")
    else:
        storage.upload(_tar([h.model_dir for h in ordered], scratch / "model.tar.gz"), f"{base}/model.tar.gz")
    data_dirs = [h.output_dir / "data" for h in ordered if any((h.output_dir / "data").iterdir())]
    if data_dirs:
        storage.upload(_tar(data_dirs, scratch / "output.tar.gz"), f"{base}/output.tar.gz")
    if spec.get("CheckpointConfig"):
        sync_checkpoints(storage, spec, name, hosts)
    shutil.rmtree(scratch, ignore_errors=True)


def sync_checkpoints(storage: RoleS3, spec: dict, name: str, hosts) -> None:
    try:
        for host in hosts:
            storage.upload_tree(host.checkpoint_dir, spec["CheckpointConfig"]["S3Uri"])
    except JobFailure as exc:
        log.warning("checkpoint sync of %s failed: %s", name, exc.reason)


def _tar(dirs: list[Path], dest: Path) -> Path:
    seen: set[str] = set()
    with tarfile.open(dest, "w:gz") as tar:
        for root in reversed(dirs):  # the last directory listed wins a name clash: add it first
            for path in sorted(root.rglob("*")):
                if path.is_symlink() or not (path.is_file() or path.is_dir()):
                    continue
                arcname = path.relative_to(root).as_posix()
                if arcname in seen:
                    continue
                seen.add(arcname)
                tar.add(path, arcname=arcname, recursive=False)
    return dest


def algorithm_error(host, code: int | None) -> str:
    text = host.failure_file()
    if text:
        return f"AlgorithmError: {text}"
    tail = " | ".join(line for line in list(host.tail)[-5:] if line.strip())
    signal_note = f" (killed by signal {-code})" if code is not None and code < 0 else ""
    reason = f'AlgorithmError: ExecuteUserScriptError:\nExitCode {code}{signal_note}\nErrorMessage "{tail}"'
    return reason[:1024]
