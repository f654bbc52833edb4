"""What every S3 test file here starts from: the admin's S3 client and a fresh bucket per test."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="module")
def s3(cloud):
    return cloud.client("s3")


@pytest.fixture()
def bucket(s3) -> str:
    name = f"kennel-test-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name
