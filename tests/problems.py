"""Reading a 422: every one has the same shape, a list of `{loc, msg, type}` items."""

from __future__ import annotations

import httpx


def unprocessable(resp: httpx.Response) -> str:
    """The messages of a 422 answer, joined; fails the test unless the answer is a 422 of the one shape."""
    assert resp.status_code == 422, (resp.status_code, resp.text)
    detail = resp.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    for item in detail:
        assert set(item) == {"loc", "msg", "type"}, item
        assert isinstance(item["loc"], list) and item["loc"][0] in {"body", "query", "path", "header"}, item
    return " ".join(item["msg"] for item in detail)
