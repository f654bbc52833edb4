"""A training job's inputs on this machine: its code and its data channels, fetched as the role.

The code is the ``sourcedir.tar.gz`` that ``sagemaker_submit_directory`` names (unpacked with the
archive rules every Kennel extraction follows: no ``..``, no links, size and member limits), and its
``requirements.txt`` is installed into an environment shared by every job with the same file
(keyed by its digest; wheels only, so installing runs no package's build code). A channel is
fetched once for all hosts; ``ShardedByS3Key`` gives each host its share of the objects.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from kennel.cloud.objectstore.store import parse_s3_url
from kennel.cloud.services.sagemaker.jobdata import JobFailure, RoleS3, clear
from kennel.ml.archive import CorruptArchiveError, UnsafeArchiveError, safe_extract_tar
from kennel.runtime.jobs.contract import Channel, known_image_module
from kennel.runtime.jobs.spec import ChannelData

MAX_SOURCE_BYTES = 1 << 30  # unpacked sourcedir.tar.gz
MAX_SOURCE_MEMBERS = 50_000
PIP_TIMEOUT_S = 600


def script_hyperparameter(spec: dict, name: str) -> str | None:
    """A script-mode hyperparameter's value (the SDK JSON-encodes them: ``"\\"hpo.py\\""``)."""
    raw = (spec.get("HyperParameters") or {}).get(name)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, str) else str(value)


def prepare_code(spec: dict, storage: RoleS3, job_root: Path) -> tuple[Path, str, str, tuple[Path, ...]]:
    """(code directory, entry point, submit directory URI, requirement environments)."""
    entry_point = script_hyperparameter(spec, "sagemaker_program") or ""
    submit = script_hyperparameter(spec, "sagemaker_submit_directory") or ""
    code_dir = job_root / "code"
    clear(code_dir)
    module = known_image_module(spec["AlgorithmSpecification"].get("TrainingImage", ""))
    if not entry_point and module:
        return code_dir, f"-m {module}", submit, ()
    if submit:
        if not submit.startswith("s3://"):
            raise JobFailure(
                "ClientError: sagemaker_submit_directory must be an s3:// URL to a sourcedir.tar.gz; "
                f"got {submit}"
            )
        bucket, key = parse_s3_url(submit)
        archive = job_root / "sourcedir.tar.gz"
        storage.download(bucket, key, archive)
        try:
            safe_extract_tar(
                archive, code_dir, max_total_bytes=MAX_SOURCE_BYTES, max_members=MAX_SOURCE_MEMBERS
            )
        except (UnsafeArchiveError, CorruptArchiveError) as exc:
            raise JobFailure(f"ClientError: the source archive {submit} cannot be used: {exc}") from None
        archive.unlink(missing_ok=True)
    target = (code_dir / entry_point).resolve()
    if not entry_point or not target.is_file() or not str(target).startswith(str(code_dir.resolve()) + "/"):
        raise JobFailure(
            "AlgorithmError: ExecuteUserScriptError:\nExitCode 2\nErrorMessage "
            f'"the entry point {entry_point!r} is not in {submit or "the submitted code"}"'
        )
    envs: tuple[Path, ...] = ()
    requirements = code_dir / "requirements.txt"
    if requirements.is_file():
        envs = (requirements_environment(requirements, job_root.parent / "_environments"),)
    return code_dir, entry_point, submit, envs


def requirements_environment(requirements: Path, root: Path) -> Path:
    """A directory with the requirements installed (``pip --target``), reused by digest."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:20]
    env_dir = root / digest
    if (env_dir / ".complete").exists():
        return env_dir
    partial = root / f"{digest}.partial"
    clear(partial)
    # Only wheels: an sdist would run its setup.py here, outside any sandbox.
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--only-binary=:all:", "--target", str(partial), "-r", str(requirements)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    try:
        # From the code directory, so a requirement may name a wheel shipped in the source archive.
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, env=env, cwd=requirements.parent
        )
    except subprocess.TimeoutExpired:
        raise JobFailure("AlgorithmError: InstallRequirementsError: pip did not finish in time") from None
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise JobFailure(
            f'AlgorithmError: InstallRequirementsError:\nExitCode {done.returncode}\nErrorMessage "{tail}"'
        )
    (partial / ".complete").write_text(digest)
    if env_dir.exists():
        clear(partial)
        return env_dir
    partial.rename(env_dir)
    return env_dir


def prepare_channels(
    spec: dict, storage: RoleS3, job_root: Path, hosts: list[str]
) -> tuple[ChannelData, ...]:
    data_root = job_root / "data"
    clear(data_root)
    prepared: list[ChannelData] = []
    for item in spec.get("InputDataConfig") or []:
        source = item["DataSource"]["S3DataSource"]
        channel = Channel(
            name=item["ChannelName"],
            distribution=source.get("S3DataDistributionType", "FullyReplicated"),
            input_mode=item.get("InputMode", "File"),
            content_type=item.get("ContentType"),
        )
        uri = source["S3Uri"]
        if source.get("S3DataType", "S3Prefix") == "ManifestFile":
            objects = storage.manifest_keys(uri, job_root)
        else:
            bucket, prefix = parse_s3_url(uri)
            # File mode lays an object out at its key minus the channel's prefix (the seeds read
            # s3://bucket/dogImages as <channel>/train/...); an object named by the whole URI keeps its name.
            objects = [
                (bucket, key, key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1])
                for key, _size in storage.list_objects(uri)
            ]
        if not objects:
            raise storage.no_objects(uri)
        objects.sort(key=lambda entry: entry[1])
        if channel.distribution == "ShardedByS3Key" and len(hosts) > 1:
            per_host = {}
            for index, host in enumerate(hosts):
                dest = data_root / channel.name / host
                dest.mkdir(parents=True, exist_ok=True)
                for bucket, key, relative in objects[index :: len(hosts)]:
                    storage.download(bucket, key, _inside(dest, relative))
                per_host[host] = dest
            prepared.append(ChannelData(channel, per_host=per_host))
        else:
            dest = data_root / channel.name
            dest.mkdir(parents=True, exist_ok=True)
            for bucket, key, relative in objects:
                storage.download(bucket, key, _inside(dest, relative))
            prepared.append(ChannelData(channel, shared=dest))
    return tuple(prepared)


def _inside(root: Path, relative: str) -> Path:
    target = (root / relative.lstrip("/")).resolve()
    if not str(target).startswith(str(root.resolve()) + "/"):
        raise JobFailure(
            f"ClientError: the object name {relative!r} would land outside its channel directory."
        )
    return target
