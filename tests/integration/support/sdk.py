"""The SageMaker Python SDK v2 pointed at a live gateway, as the README tells users to set it up."""

from __future__ import annotations

from pathlib import Path

import pytest


def sdk_session(cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(the sagemaker module, a Session talking to Kennel), telemetry opted out as README explains."""
    config = tmp_path / "sagemaker-config.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
    )
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    sagemaker = pytest.importorskip("sagemaker")

    from kennel.sdk import kennel_session

    boto = kennel_session(
        cloud.endpoint,
        region_name="us-east-1",
        aws_access_key_id=cloud.access_key_id,
        aws_secret_access_key=cloud.secret_access_key,
    )
    return sagemaker, sagemaker.Session(boto_session=boto)
