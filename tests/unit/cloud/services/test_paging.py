"""The one paginator: keyset tokens that survive inserts between pages."""

from __future__ import annotations

import pytest

from kennel.cloud.errors import ValidationException
from kennel.cloud.services.paging import paginate


def test_pages_cover_everything_once_even_with_inserts():
    items = [{"name": f"job-{i:02d}", "t": i} for i in range(25)]
    seen, token = [], None
    for round_ in range(10):
        page, token = paginate(items, lambda r: (r["t"], r["name"]), limit=10, token=token)
        seen += [r["name"] for r in page]
        items.insert(0, {"name": f"early-{round_}", "t": -1 - round_})  # lands before the cursor
        if token is None:
            break
    assert seen == [f"job-{i:02d}" for i in range(25)]


def test_descending():
    items = [{"n": i} for i in range(5)]
    first, token = paginate(items, lambda r: (r["n"],), limit=2, descending=True)
    second, _ = paginate(items, lambda r: (r["n"],), limit=2, token=token, descending=True)
    assert [r["n"] for r in first + second] == [4, 3, 2, 1]


@pytest.mark.parametrize("token", ["!!", "bm90IGpzb24", "eyJhIjoxfQ"])
def test_bad_tokens(token):
    with pytest.raises(ValidationException):
        paginate([{"n": 1}], lambda r: (r["n"],), limit=1, token=token)


def test_page_after_resumes_after_the_last_item_even_when_rows_are_inserted_before_it():
    from kennel.cloud.services.paging import page_after

    rows = [("fn", str(v)) for v in range(7)]
    first, token = page_after(rows, 3, None, invalid=lambda: ValidationException("bad"))
    rows.insert(0, ("fn", "new"))  # lands before the cursor
    second, token = page_after(rows, 3, token, invalid=lambda: ValidationException("bad"))
    third, token = page_after(rows, 3, token, invalid=lambda: ValidationException("bad"))
    assert [r[1] for r in first + second + third] == [str(v) for v in range(7)] and token is None
    with pytest.raises(ValidationException):
        page_after(rows, 3, "garbage", invalid=lambda: ValidationException("bad"))
