"""json 1.0 on a small synthetic model through a real botocore client: documents, unions, member-level
timestamp formats, longs past 2**53, special floats, maps of lists of timestamps."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from test_protocol_harness import Harness, body_of, meta, model_session, shape

from kennel.cloud.protocol import parse_request

T0 = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
T1 = datetime(2026, 11, 22, 11, 0, 5, 125000, tzinfo=UTC)

JSON10 = {
    "version": "2.0",
    "metadata": meta("kennel-json-test", "json", jsonVersion="1.0", targetPrefix="KennelJson_20260101"),
    "operations": {
        "Echo": {
            "name": "Echo",
            "http": {"method": "POST", "requestUri": "/"},
            "input": {"shape": "EchoIn"},
            "output": {"shape": "EchoIn"},
        }
    },
    "shapes": {
        "EchoIn": shape(
            "structure",
            members={
                "Doc": {"shape": "Doc"},
                "Choice": {"shape": "Choice"},
                "Iso": {"shape": "Stamp", "timestampFormat": "iso8601"},
                "Epoch": {"shape": "Stamp"},
                "Data": {"shape": "Blob"},
                "Big": {"shape": "Long"},
                "F": {"shape": "Float"},
                "Grid": {"shape": "StampMap"},
            },
        ),
        "Doc": shape("structure", document=True, members={}),
        "Choice": shape("structure", union=True, members={"A": {"shape": "Str"}, "B": {"shape": "Long"}}),
        "StampMap": shape("map", key={"shape": "Str"}, value={"shape": "StampList"}),
        "StampList": shape("list", member={"shape": "Stamp"}),
        "Str": shape("string"),
        "Long": shape("long"),
        "Float": shape("float"),
        "Stamp": shape("timestamp"),
        "Blob": shape("blob"),
    },
}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return model_session(tmp_path_factory.mktemp("models"), (JSON10,))


def test_json10_documents_unions_and_timestamp_formats(session: Any) -> None:
    harness = Harness("kennel-json-test", session=session)
    params = {
        "Doc": {"free": ["form", 1, None, {"x": True}]},
        "Choice": {"B": 2**53},
        "Iso": T1,
        "Epoch": T1,
        "Data": b"bytes",
        "Big": -(2**62),
        "F": 1.5,
        "Grid": {"row": [T0, T1]},
    }
    answer = harness.call("echo", params, params)
    assert (
        harness.request is not None
        and harness.request.headers["content-type"] == "application/x-amz-json-1.0"
    )
    assert harness.params == params
    assert body_of(answer) == params
    wire = json.loads(harness.response.body)  # type: ignore[union-attr]
    assert wire["Iso"] == "2026-11-22T11:00:05.125Z" and wire["Epoch"] == T1.timestamp()


def test_json_special_floats(session: Any) -> None:
    harness = Harness("kennel-json-test", session=session)
    harness.call("echo", {"F": math.inf}, {"F": math.nan})
    assert harness.params == {"F": math.inf}
    assert json.loads(harness.response.body) == {"F": "NaN"}  # type: ignore[union-attr]
    request = harness.request
    assert request is not None
    assert parse_request("kennel-json-test", "Echo", request) == {"F": math.inf}
