"""Shared fixtures: small synthetic datasets, built once per test session."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from kennel.ml.synth import SynthSpec, generate


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 classes × 24 training images (6 valid, 6 test per class), ~64 px."""
    root = tmp_path_factory.mktemp("synth")
    generate(root, SynthSpec(classes=5, per_class=24, size=64, seed=3))
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
