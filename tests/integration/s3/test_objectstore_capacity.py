"""SeaweedFS holds many buckets on a small disk: a new bucket claims one volume, never a disk-sized share.

CI once failed every PutObject after a few dozen buckets: with volumes counted from free disk, each new
bucket pre-grew seven volumes and each claimed a full volume's size, so a machine with a few GB free ran
out of volumes long before it ran out of bytes. These tests read the master's own topology.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kennel.cloud.objectstore.seaweed import SeaweedProcess

pytestmark = pytest.mark.timeout(300)
BUCKETS = 40


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedProcess]:
    process = SeaweedProcess(Path(tmp_path_factory.mktemp("capacity")))
    process.start()
    yield process
    process.stop()


def master_status(weed: SeaweedProcess, path: str) -> dict:
    """The master's HTTP API is mutual TLS: Kennel's own client certificate reads it."""
    assert weed.ports is not None and weed.security is not None
    url = f"https://127.0.0.1:{weed.ports.master}{path}"
    with urllib.request.urlopen(url, timeout=5, context=weed.security.client_context()) as response:
        return json.load(response)


def volumes_by_collection(weed: SeaweedProcess) -> dict[str, int]:
    counts: dict[str, int] = {}
    for center in master_status(weed, "/vol/status")["Volumes"]["DataCenters"].values():
        for rack in center.values():
            for volumes in rack.values():
                for volume in volumes or []:
                    counts[volume["Collection"]] = counts.get(volume["Collection"], 0) + 1
    return counts


def test_each_bucket_takes_one_volume_and_the_limit_ignores_free_disk(weed: SeaweedProcess) -> None:
    s3 = weed.store_client()
    names = [f"capacity-{index:03d}" for index in range(BUCKETS)]
    for name in names:
        s3.create_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="object", Body=b"x" * 1024)
    for name in names:
        assert s3.get_object(Bucket=name, Key="object")["Body"].read() == b"x" * 1024
    counts = volumes_by_collection(weed)
    assert {name: counts.get(name) for name in names} == dict.fromkeys(names, 1)
    limit = master_status(weed, "/dir/status")["Topology"]["Max"]
    assert limit >= 1000, f"the volume limit ({limit}) looks derived from free disk again"
