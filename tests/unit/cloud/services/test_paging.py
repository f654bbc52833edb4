"""The one paginator: keyset tokens that survive inserts between pages, in memory and for SQL callers,
with each service's own error for a token it did not issue."""

from __future__ import annotations

import base64
import json

import pytest

from kennel.cloud.errors import AwsError
from kennel.cloud.services.autoscaling import common as autoscaling
from kennel.cloud.services.cloudwatch import metricdata as cloudwatch
from kennel.cloud.services.iam import common as iam
from kennel.cloud.services.lambda_ import common as lambda_
from kennel.cloud.services.logs import events as logs
from kennel.cloud.services.paging import Paginator
from kennel.cloud.services.sagemaker import common as sagemaker


class Refused(Exception):
    pass


PAGER = Paginator(lambda token: Refused(token))


def _forge(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()


def _walk(items: list[dict], limit: int, between, **options) -> list[str]:
    """Every name a client paging through ``items`` sees, with ``between`` run after each page."""
    seen: list[str] = []
    token = None
    for round_ in range(50):
        page, token = PAGER.page(items, lambda r: (r["t"], r["name"]), limit=limit, token=token, **options)
        seen += [r["name"] for r in page]
        if token is None:
            return seen
        between(items, round_)
    raise AssertionError("the pages never ended")


# ----- concurrent changes -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("descending", "inserted_t"),
    [
        (False, lambda round_: -1 - round_),  # ascending: a smaller key lands before the cursor
        (False, lambda round_: 0),  # ties the first item's sort value; the name breaks the tie
        (True, lambda round_: 100 + round_),  # descending: a larger key lands before the cursor
    ],
    ids=["ascending", "tie-on-sort-value", "descending"],
)
@pytest.mark.parametrize("limit", [1, 3, 10])
def test_an_item_inserted_before_the_cursor_is_neither_repeated_nor_skips_another(
    descending, inserted_t, limit
):
    items = [{"name": f"job-{i:02d}", "t": i} for i in range(25)]
    expected = [r["name"] for r in sorted(items, key=lambda r: r["t"], reverse=descending)]

    def insert_before(items: list[dict], round_: int) -> None:
        items.insert(0, {"name": f"early-{round_:02d}", "t": inserted_t(round_)})

    assert _walk(items, limit, insert_before, descending=descending) == expected


def test_an_item_inserted_after_the_cursor_is_seen_once():
    items = [{"name": f"job-{i:02d}", "t": i} for i in range(0, 20, 2)]

    def insert_ahead(items: list[dict], round_: int) -> None:
        items.append({"name": f"late-{round_:02d}", "t": 2 * round_ + 5})  # between two unseen items

    seen = _walk(items, 3, insert_ahead)
    assert len(seen) == len(set(seen)) and {f"job-{i:02d}" for i in range(0, 20, 2)} <= set(seen)
    assert seen == sorted(seen, key=lambda name: next(r["t"] for r in items if r["name"] == name))


def test_the_last_item_returned_may_be_deleted_before_the_next_page():
    items = [{"name": f"job-{i}", "t": i} for i in range(6)]

    def delete_last_seen(items: list[dict], round_: int) -> None:
        del items[(round_ + 1) * 2 - 1 - round_]  # the last row of the page just returned

    assert _walk(items, 2, delete_last_seen) == [f"job-{i}" for i in range(6)]


# ----- pages --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("count", "limit", "pages"),
    [(0, 3, [[]]), (3, 3, [[0, 1, 2]]), (4, 3, [[0, 1, 2], [3]]), (5, 1, [[0], [1], [2], [3], [4]])],
)
def test_page_sizes_and_the_last_page_has_no_token(count, limit, pages):
    items, token, got = list(range(count)), None, []
    while True:
        page, token = PAGER.page(items, lambda n: (n,), limit=limit, token=token)
        got.append(page)
        if token is None:
            break
    assert got == pages


def test_items_come_back_in_key_order_whatever_order_they_arrive_in():
    page, _ = PAGER.page(["b", "c", "a"], lambda s: (s,), limit=5, token=None)
    assert page == ["a", "b", "c"]


def test_float_keys_survive_the_token_exactly():
    stamps = [1_700_000_000.123456, 1_700_000_000.123457, 1_700_000_000.123458]
    first, token = PAGER.page(stamps, lambda x: (x,), limit=1, token=None)
    rest, _ = PAGER.page(stamps, lambda x: (x,), limit=5, token=token)
    assert first + rest == stamps


def test_an_empty_token_is_no_token():
    assert PAGER.page([2, 1], lambda n: (n,), limit=5, token="") == ([1, 2], None)
    assert PAGER.decode_token("", like=(int,)) is None and PAGER.decode_token(None, like=(int,)) is None


# ----- the form for SQL callers -------------------------------------------------------------------
def test_sql_callers_cut_what_they_read_and_resume_from_the_decoded_key():
    table = [(i, f"name-{i}") for i in range(1, 8)]  # (id, name) rows, as a query ordered by id reads them
    seen, token = [], None
    while True:
        after = PAGER.decode_token(token, like=(int,))
        rows = [row for row in table if after is None or row[0] > after[0]][: 3 + 1]  # LIMIT limit + 1
        page, token = PAGER.cut(rows, 3, key=lambda row: (row[0],))
        seen += page
        if token is None:
            break
        table.insert(0, (0, "inserted-before-the-cursor"))
    assert seen == [(i, f"name-{i}") for i in range(1, 8)]


@pytest.mark.parametrize(
    ("key", "like", "accepted"),
    [
        ((5,), (int,), True),
        ((5.5,), (int,), True),  # ints and floats compare with each other
        (("x", 5), (str, int), True),
        (("x",), (int,), False),  # a string where SQL compares a number
        ((5, "x"), (int,), False),  # another listing's key: wrong arity
        ((True,), (int,), False),
    ],
)
def test_decode_token_checks_the_key_is_shaped_like_the_listing(key, like, accepted):
    token = PAGER.encode_token(key)
    if accepted:
        assert PAGER.decode_token(token, like=like) == key
    else:
        with pytest.raises(Refused):
            PAGER.decode_token(token, like=like)


def test_a_token_bound_to_one_scope_is_refused_in_another():
    token = PAGER.encode_token((1, 2), scope="group-1")
    assert PAGER.decode_token(token, like=(int, int), scope="group-1") == (1, 2)
    for scope in ("group-2", None):
        with pytest.raises(Refused):
            PAGER.decode_token(token, like=(int, int), scope=scope)
    with pytest.raises(Refused):
        PAGER.page([1, 2, 3], lambda n: (n,), limit=1, token=PAGER.encode_token((1,)), scope="other")


# ----- forged tokens: each service's own error ----------------------------------------------------
FORGED = [
    "!!",  # not base64
    "garbage",  # base64 of bytes that are not text
    "bm90IGpzb24",  # base64 of text that is not JSON
    _forge({"a": 1}),  # JSON without a key
    _forge({"after": []}),
    _forge({"after": [None]}),
    _forge({"after": [[1]]}),
    _forge([1]),
    _forge({"after": ["name"]}),  # a string key where this listing has numbers
    _forge({"after": [1, 2]}),  # a key of another arity
]

SERVICES = [
    pytest.param(cloudwatch.PAGES, "InvalidNextToken", "The NextToken is invalid.", id="cloudwatch"),
    pytest.param(
        cloudwatch.METRIC_DATA_PAGES,
        "InvalidNextToken",
        "The NextToken does not belong to this request or is malformed.",
        id="cloudwatch-getmetricdata",
    ),
    pytest.param(logs.PAGES, "InvalidParameterException", "The specified nextToken is invalid.", id="logs"),
    pytest.param(autoscaling.PAGES, "InvalidNextTokenException", "Invalid token", id="autoscaling"),
    pytest.param(iam.PAGES, "InvalidInput", "Invalid Marker.", id="iam"),
    pytest.param(lambda_.PAGES, "InvalidParameterValueException", "Invalid marker.", id="lambda"),
    pytest.param(sagemaker.PAGES, "ValidationException", "Invalid pagination token", id="sagemaker"),
]


@pytest.mark.parametrize("token", FORGED)
@pytest.mark.parametrize(("pager", "code", "message"), SERVICES)
def test_a_forged_token_gives_the_services_error(pager, code, message, token):
    with pytest.raises(AwsError) as in_memory:
        pager.page([{"n": 1}, {"n": 2}], lambda r: (r["n"],), limit=1, token=token)
    with pytest.raises(AwsError) as for_sql:
        pager.decode_token(token, like=(int,))
    for refused in (in_memory.value, for_sql.value):
        assert refused.code == code and refused.message.startswith(message)


def test_a_token_from_another_request_is_refused_with_the_services_error():
    token = cloudwatch.METRIC_DATA_PAGES.encode_token((0, 60), scope="request-a")
    with pytest.raises(AwsError) as refused:
        cloudwatch.METRIC_DATA_PAGES.page([(0, 60)], lambda p: p, limit=1, token=token, scope="request-b")
    assert refused.value.code == "InvalidNextToken"


# ----- GetMetricData -------------------------------------------------------------------------------
def _metric_pages(results: list, between, *, descending: bool) -> list[list[dict]]:
    """Every GetMetricData page of 2 values over ``results`` ([(query, {timestamp: value})]), with
    ``between`` run on the live series after each page."""
    from datetime import UTC, datetime

    from kennel.cloud.services.cloudwatch.metricdata import _page

    params = {
        "MetricDataQueries": [query for query, _ in results],
        "StartTime": datetime(2024, 1, 1, tzinfo=UTC),
        "EndTime": datetime(2024, 1, 2, tzinfo=UTC),
        "MaxDatapoints": 2,
        "ScanBy": "TimestampDescending" if descending else "TimestampAscending",
    }
    pages = []
    for round_ in range(20):
        ordered = [(query, sorted(series.items(), reverse=descending)) for query, series in results]
        answer = _page(params, ordered, descending)
        pages.append(answer["MetricDataResults"])
        if "NextToken" not in answer:
            return pages
        params["NextToken"] = answer["NextToken"]
        between(results, round_)
    raise AssertionError("the pages never ended")


@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
def test_get_metric_data_a_period_filled_before_the_cursor_repeats_nothing_and_hides_nothing(descending):
    a, b = {"Id": "a", "Label": "a"}, {"Id": "b", "Label": "b"}
    results = [(a, {60: 1.0, 180: 2.0, 300: 3.0}), (b, {60: 10.0, 120: 20.0})]
    edge = 0 if descending else 600  # a period at the far end from where the scan starts...

    def fill_a_period(results: list, round_: int) -> None:
        if round_ == 0:  # ...lands before the cursor in scan order: the new first value of "a"
            results[0][1][600 - edge] = 99.0

    pages = _metric_pages(results, fill_a_period, descending=descending)
    values = [v for page in pages for result in page for v in result["Values"]]
    expected_a = [3.0, 2.0, 1.0] if descending else [1.0, 2.0, 3.0]
    expected_b = [20.0, 10.0] if descending else [10.0, 20.0]
    assert values == expected_a + expected_b
    statuses = [[result["StatusCode"] for result in page] for page in pages]
    assert statuses == [["PartialData", "PartialData"], ["Complete", "PartialData"], ["Complete", "Complete"]]
