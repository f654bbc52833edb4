"""`kennel notebook`: Jupyter kernels whose cells talk to Kennel as a SageMaker execution role.

A notebook written for AWS (the seeds' ``train_and_deploy.ipynb``) runs unchanged when its kernel

* sends every boto3 request to Kennel, including the SageMaker SDK's STS client, which is built with
  an explicit ``https://sts.<region>.amazonaws.com`` and so ignores ``AWS_ENDPOINT_URL``: an IPython
  start-up file calls :func:`kennel.sdk.redirect_every_session` before the first cell;
* *is* a role, as a notebook instance is, so ``get_execution_role()`` answers: the kernel's
  environment holds a session of that role (``kennel env --role`` does the same for a shell);
* does not send the SDK's telemetry: ``SAGEMAKER_USER_CONFIG_OVERRIDE`` names a config that opts out.

Everything is written under ``<state>/notebook``; the credentials travel only in the process
environment, never in a file. ``--execute`` runs a notebook headless with nbclient (what the tests
do); otherwise a Jupyter server (``pip install notebook``) is started on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

STARTUP = """\
# Written by `kennel notebook`: before the first cell, every boto3/botocore session this kernel makes
# (the SageMaker SDK's own, with its hard-coded STS endpoint, included) is pointed at Kennel.
from kennel.sdk import redirect_every_session as _kennel_redirect

_kennel_redirect()
del _kennel_redirect
"""

SDK_CONFIG = """\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


class NotebookError(Exception):
    pass


def prepare(state_dir: Path) -> Path:
    """Write the kernel's start-up hook, kernel spec and SDK config under ``<state>/notebook``."""
    root = state_dir / "notebook"
    startup = root / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-kennel.py").write_text(STARTUP)
    (root / "sagemaker-config.yaml").write_text(SDK_CONFIG)
    # A "python3" spec found on JUPYTER_PATH wins over any other: notebooks saved with the usual
    # kernel name get this interpreter (the one Kennel is installed in), not whatever python3 is first.
    spec = root / "share" / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    kernel = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (Kennel)",
        "language": "python",
    }
    (spec / "kernel.json").write_text(json.dumps(kernel, indent=1))
    return root


def kernel_env(root: Path, endpoint: str, region: str, credentials: dict, base: dict[str, str]) -> dict:
    """The environment of Jupyter and its kernels: Kennel's endpoint, the role session, the hook."""
    env = {k: v for k, v in base.items() if not k.startswith("AWS_")}
    bin_dir = str(Path(sys.executable).parent)  # `!kennel ...` and `!aws ...` in cells find this venv's
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_DEFAULT_REGION=region,
        AWS_REGION=region,
        AWS_ACCESS_KEY_ID=credentials["AccessKeyId"],
        AWS_SECRET_ACCESS_KEY=credentials["SecretAccessKey"],
        AWS_SESSION_TOKEN=credentials["SessionToken"],
        IPYTHONDIR=str(root / "ipython"),
        JUPYTER_PATH=os.pathsep.join(p for p in (str(root / "share"), base.get("JUPYTER_PATH", "")) if p),
        SAGEMAKER_USER_CONFIG_OVERRIDE=str(root / "sagemaker-config.yaml"),
        SAGEMAKER_SUPPRESS_V2_WARNING="1",
        PATH=os.pathsep.join([bin_dir, base.get("PATH", os.defpath)]),
    )
    return env


def execute(notebook: Path, output: Path, env: dict[str, str], cell_timeout: int) -> None:
    """Run every cell of ``notebook`` in a fresh kernel (cwd: its directory) and save it to ``output``,
    also when a cell fails (then NotebookError names it)."""
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
    except ImportError:
        raise NotebookError("--execute needs nbclient: pip install nbclient nbformat ipykernel") from None
    nb = nbformat.read(notebook, as_version=4)
    # The kernel spec is looked up in this process: JUPYTER_PATH must name the hook's spec here too.
    os.environ["JUPYTER_PATH"] = env["JUPYTER_PATH"]
    client = NotebookClient(
        nb,
        timeout=cell_timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.resolve().parent)}},
    )
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        raise NotebookError(str(exc)) from None
    finally:
        nbformat.write(nb, output)


def serve(directory: Path, env: dict[str, str], port: int) -> int:
    """Start a Jupyter server on 127.0.0.1 (foreground; Ctrl-C stops it) and return its exit status."""
    bin_dir = Path(sys.executable).parent
    jupyter = shutil.which("jupyter", path=os.pathsep.join([str(bin_dir), env.get("PATH", "")]))
    if jupyter is None:
        raise NotebookError(
            "no Jupyter server here: `pip install notebook` (or jupyterlab), "
            "or run a notebook headless with --execute"
        )
    tool = "lab" if shutil.which("jupyter-lab", path=str(Path(jupyter).parent)) else "notebook"
    argv = [
        jupyter,
        tool,
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.root_dir={directory}",
    ]
    if os.geteuid() == 0:
        # Jupyter refuses root unless told; Kennel runs as root wherever it sandboxes user code.
        argv.append("--allow-root")
    server = subprocess.Popen(argv, env=env)
    # Ctrl-C reaches Jupyter too (same terminal): let it ask, shut its kernels down and exit by itself,
    # instead of this process dying and leaving it behind. Set after the exec, so Jupyter keeps SIGINT.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return server.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
