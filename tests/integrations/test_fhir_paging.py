"""FHIR searches page by keyset: the next link's `_cursor` continues after the last match of the page (and
the previous link's before its first), in any `_sort` order (nulls last), `_count` up to 1,000, and
`total` only when asked."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.integrations.fhir_support import fhir_get, ids, register


async def _all_pages(client: httpx.AsyncClient, auth: dict[str, str], **params: object) -> list[str]:
    seen: list[str] = []
    bundle = (await fhir_get(client, "Patient", auth, **params)).json()
    while True:
        seen += ids(bundle)
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            return seen
        parts = urlsplit(following[0])
        assert "_offset" not in dict(parse_qsl(parts.query))
        bundle = (await fhir_get(client, "Patient", auth, **dict(parse_qsl(parts.query)))).json()


async def test_pages_in_any_sort_order_add_up_to_the_whole_result_once(
    client: httpx.AsyncClient, auth: dict[str, str], fhir_auth: dict[str, str]
) -> None:
    births = ["1980-01-01", "1980-01-01", None, "1975-05-05", None, "1990-09-09", "1980-01-01"]
    for i, born in enumerate(births):
        await register(
            client, auth, first_name=f"Pat{i}", last_name=["Ames", "Bo", "Cy"][i % 3], date_of_birth=born
        )

    for sort in ("-birthdate", "birthdate", "family,-birthdate", "_lastUpdated"):
        whole = ids((await fhir_get(client, "Patient", fhir_auth, _sort=sort, _count=1000)).json())
        paged = await _all_pages(client, fhir_auth, _sort=sort, _count=2)
        assert len(whole) == len(births)
        assert paged == whole, sort


def _link(bundle: dict[str, object], relation: str) -> dict[str, str] | None:
    """The query of the bundle's link of `relation`, or None when it has none."""
    urls = [link["url"] for link in bundle["link"] if link["relation"] == relation]  # type: ignore[attr-defined, index]
    return dict(parse_qsl(urlsplit(urls[0]).query)) if urls else None


async def test_walking_back_by_the_previous_links_gives_the_pages_walking_forward_gave(
    client: httpx.AsyncClient, auth: dict[str, str], fhir_auth: dict[str, str]
) -> None:
    births = ["1980-01-01", None, "1975-05-05", "1980-01-01", None, "1990-09-09", "1980-01-01"]
    for i, born in enumerate(births):
        family = ["Ames", "Bo"][i % 2]
        await register(client, auth, first_name=f"Back{i}", last_name=family, date_of_birth=born)

    for sort in ("birthdate", "-birthdate", "family,-birthdate", "_lastUpdated"):
        first = (await fhir_get(client, "Patient", fhir_auth, _sort=sort, _count=2)).json()
        assert _link(first, "previous") is None
        forward, bundle = [ids(first)], first
        while (following := _link(bundle, "next")) is not None:
            bundle = (await fhir_get(client, "Patient", fhir_auth, **following)).json()
            forward.append(ids(bundle))
        backward = [ids(bundle)]
        while (preceding := _link(bundle, "previous")) is not None:
            bundle = (await fhir_get(client, "Patient", fhir_auth, **preceding)).json()
            backward.append(ids(bundle))

        assert [len(page) for page in forward] == [2, 2, 2, 1], sort
        assert backward == forward[::-1], sort
        again = (await fhir_get(client, "Patient", fhir_auth, **_link(bundle, "next") or {})).json()
        assert ids(again) == forward[1], sort  # and forward again from the first page reached backwards


async def test_count_is_capped_at_1000_and_total_is_counted_only_when_asked(
    client: httpx.AsyncClient, auth: dict[str, str], fhir_auth: dict[str, str]
) -> None:
    await register(client, auth)

    capped = (await fhir_get(client, "Patient", fhir_auth, _count=5000)).json()
    counted = (await fhir_get(client, "Patient", fhir_auth, _total="accurate")).json()

    [self_link] = [link["url"] for link in capped["link"] if link["relation"] == "self"]
    assert dict(parse_qsl(urlsplit(self_link).query))["_count"] == "1000"
    assert "total" not in capped
    assert counted["total"] == 1


async def test_a_cursor_of_another_sort_is_refused(
    client: httpx.AsyncClient, auth: dict[str, str], fhir_auth: dict[str, str]
) -> None:
    for i in range(3):
        await register(client, auth, first_name=f"C{i}")
    bundle = (await fhir_get(client, "Patient", fhir_auth, _count=1, _sort="family,given")).json()
    [following] = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
    cursor = dict(parse_qsl(urlsplit(following).query))["_cursor"]

    refused = await fhir_get(client, "Patient", fhir_auth, _count=1, _cursor=cursor)

    assert refused.status_code == 400
    assert "_sort" in refused.json()["issue"][0]["diagnostics"]
