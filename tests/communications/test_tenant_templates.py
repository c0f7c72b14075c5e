"""Templates a tenant defines: create, change, deactivate, delete; listed with the built-in ones; rendered
when a message names them; invisible to every other tenant."""

from __future__ import annotations

import httpx
import pytest

from core.auth import Role
from tests.communications.conftest import API
from tests.problems import unprocessable

BASE = f"{API}/communications"
TEMPLATES = f"{BASE}/templates"

POST_VISIT = {
    "id": "post_visit_tips",
    "name": "Post-visit tips",
    "channel": "sms",
    "category": "follow_up",
    "subject": "After your {{ visit_kind }}",
    "body": "Hi {{ patient_first_name }}, after your {{ visit_kind }} drink {{ litres }} litres of water "
    "a day.",
}


async def _create(client: httpx.AsyncClient, auth: dict, **overrides) -> httpx.Response:
    return await client.post(TEMPLATES, json={**POST_VISIT, **overrides}, headers=auth)


async def _ids(client: httpx.AsyncClient, auth: dict, **params) -> list[str]:
    listing = (await client.get(TEMPLATES, params=params, headers=auth)).json()
    return [t["id"] for t in listing["templates"]]


async def test_create_lists_it_with_the_built_ins_and_derives_its_variables(client, auth) -> None:
    resp = await _create(client, auth)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["variables"] == ["litres", "patient_first_name", "visit_kind"]
    assert (body["id"], body["channel"], body["is_active"]) == ("post_visit_tips", "sms", True)
    listing = (await client.get(TEMPLATES, headers=auth)).json()
    ids = [t["id"] for t in listing["templates"]]
    assert "apt_reminder" in ids and ids[-1] == "post_visit_tips"
    assert listing["total"] == len(ids)
    mine = next(t for t in listing["templates"] if t["id"] == "post_visit_tips")
    assert set(mine) == {"id", "name", "channel", "category", "subject", "body", "variables", "language"}
    assert mine["language"] == "en"
    assert "post_visit_tips" in await _ids(client, auth, channel="sms", category="follow_up")
    assert "post_visit_tips" not in await _ids(client, auth, channel="email")
    assert "post_visit_tips" not in await _ids(client, auth, category="billing")


async def test_patch_rederives_variables_and_deactivation_hides_it(client, auth) -> None:
    await _create(client, auth)
    resp = await client.patch(
        f"{TEMPLATES}/post_visit_tips",
        json={"body": "Rest for {{ days }} days.", "name": "Rest"},
        headers=auth,
    )
    assert resp.status_code == 200, resp.text
    assert (resp.json()["variables"], resp.json()["name"]) == (["days", "visit_kind"], "Rest")
    off = await client.patch(f"{TEMPLATES}/post_visit_tips", json={"is_active": False}, headers=auth)
    assert off.json()["is_active"] is False
    assert "post_visit_tips" not in await _ids(client, auth)
    assert "post_visit_tips" in await _ids(client, auth, include_inactive=True)


async def test_delete_is_204_then_404(client, auth) -> None:
    await _create(client, auth)
    assert (await client.delete(f"{TEMPLATES}/post_visit_tips", headers=auth)).status_code == 204
    assert (await client.delete(f"{TEMPLATES}/post_visit_tips", headers=auth)).status_code == 404
    assert (
        await client.patch(f"{TEMPLATES}/post_visit_tips", json={"name": "x"}, headers=auth)
    ).status_code == 404
    assert "post_visit_tips" not in await _ids(client, auth, include_inactive=True)


async def test_bodies_that_do_not_compile_are_422(client, auth) -> None:
    assert (await _create(client, auth, body="Hi {{ patient_first_name ")).status_code == 422
    assert (await _create(client, auth, body="{% for x in %}{% endfor %}")).status_code == 422
    unknown_filter = await _create(client, auth, body="Hi {{ patient_first_name | shout }}")
    assert unknown_filter.status_code == 422, unknown_filter.text
    assert (await _create(client, auth, subject="{{ }}")).status_code == 422
    assert (await _create(client, auth, category="marketing")).status_code == 422
    assert (await _create(client, auth, channel="fax")).status_code == 422
    assert (await _create(client, auth, id="Has Spaces")).status_code == 422
    await _create(client, auth)
    bad_patch = await client.patch(f"{TEMPLATES}/post_visit_tips", json={"body": "{{ x "}, headers=auth)
    assert bad_patch.status_code == 422
    assert (
        await client.patch(f"{TEMPLATES}/post_visit_tips", json={"body": None}, headers=auth)
    ).status_code == 422
    assert (await client.get(TEMPLATES, headers=auth)).json()["templates"][-1]["body"] == POST_VISIT["body"]


async def test_an_id_clashing_with_a_built_in_or_an_existing_template_is_409(client, auth) -> None:
    assert (await _create(client, auth, id="apt_reminder")).status_code == 409
    assert (await _create(client, auth)).status_code == 201
    assert (await _create(client, auth, name="again")).status_code == 409
    assert (
        await client.patch(f"{TEMPLATES}/apt_reminder", json={"name": "x"}, headers=auth)
    ).status_code == 409
    assert (await client.delete(f"{TEMPLATES}/apt_reminder", headers=auth)).status_code == 409


async def test_another_tenants_template_is_invisible(
    client, auth, make_tenant, headers_for, make_patient
) -> None:
    await _create(client, auth)
    other_tenant = await make_tenant()
    other = headers_for(other_tenant)
    assert "post_visit_tips" not in await _ids(client, other, include_inactive=True)
    assert (
        await client.patch(f"{TEMPLATES}/post_visit_tips", json={"name": "x"}, headers=other)
    ).status_code == 404
    assert (await client.delete(f"{TEMPLATES}/post_visit_tips", headers=other)).status_code == 404
    theirs = await make_patient(tenant=other_tenant)
    resp = await client.post(
        BASE,
        json={
            "patient_id": str(theirs.id),
            "channel": "sms",
            "template_name": "post_visit_tips",
            "template_vars": {"visit_kind": "x", "litres": "2"},
        },
        headers=other,
    )
    assert resp.status_code == 422
    # and the other tenant may use the same id for its own template
    assert (await _create(client, other)).status_code == 201


async def test_a_message_naming_a_tenant_template_is_rendered(client, auth, make_patient) -> None:
    await _create(client, auth)
    patient = await make_patient()
    message = {"patient_id": str(patient.id), "channel": "sms", "template_name": "post_visit_tips"}
    resp = await client.post(
        BASE, json={**message, "template_vars": {"visit_kind": "check-up", "litres": "2"}}, headers=auth
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["message"] == f"Hi {patient.first_name}, after your check-up drink 2 litres of water a day."
    assert (body["subject"], body["template_name"]) == ("After your check-up", "post_visit_tips")
    missing = await client.post(BASE, json={**message, "template_vars": {"visit_kind": "x"}}, headers=auth)
    assert missing.status_code == 422 and "litres" in missing.text
    await client.patch(f"{TEMPLATES}/post_visit_tips", json={"is_active": False}, headers=auth)
    inactive = await client.post(
        BASE, json={**message, "template_vars": {"visit_kind": "x", "litres": "1"}}, headers=auth
    )
    assert inactive.status_code == 422


async def test_viewers_cannot_write_templates(client, tenant_id, headers_for) -> None:
    viewer = headers_for(tenant_id, Role.VIEWER)
    assert (await client.post(TEMPLATES, json=POST_VISIT, headers=viewer)).status_code == 403
    assert (await client.get(TEMPLATES, headers=viewer)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        "{{ 'x' * 10000000 }}",
        "{{ [1] * 10000000 }}",
        "{{ 9 ** 9999999 }}",
        "{% for i in range(10000000) %}x{% endfor %}",
        "{% for i in range(1000) %}{% for j in range(1000) %}xy{% endfor %}{% endfor %}",
        "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(100) %}{% endfor %}"
        "{% endfor %}{% endfor %}",
        "{{ lipsum(n=100000) }}",
        "{{ 'x'|center(300000000) }}",
        "{{ '%0300000000d' % 1 }}",
        "{{ '%0300000000d'|format(1) }}",
        "{{ '{:0300000000d}'.format(1) }}",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% set s = 'x' * 20000 %}{{ s|list|join(s) }}",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        "{{ ((10 ** 64) ** 64) ** 64 }}",
    ],
    ids=[
        "string repetition",
        "list repetition",
        "power",
        "huge range",
        "long output",
        "three nested loops",
        "lipsum",
        "center",
        "percent format",
        "format filter",
        "str.format",
        "doubling by concatenation",
        "join",
        "macro recursion",
        "power of a power",
    ],
)
async def test_a_template_cannot_render_a_huge_message(client, auth, make_patient, body: str) -> None:
    created = await _create(client, auth, id="bomb", subject="", body=body)
    assert created.status_code == 201, created.text  # it compiles: the bound applies when it renders
    patient = await make_patient()
    sent = await client.post(
        BASE,
        json={"patient_id": str(patient.id), "channel": "sms", "template_name": "bomb"},
        headers=auth,
    )
    assert sent.status_code == 422 and "template" in unprocessable(sent)


@pytest.mark.parametrize(
    "body",
    [
        "{{ a }}" * 1_400,
        "{{ " + "(" * 4_000 + "1" + ")" * 4_000 + " }}",
        "{% if a %}" * 100 + "{% endif %}" * 100,
    ],
    ids=["too many elements", "nested parentheses", "nested blocks"],
)
async def test_a_template_too_large_or_deep_to_compile_quickly_is_422(client, auth, body: str) -> None:
    created = await _create(client, auth, id="heavy", subject="", body=body)
    assert created.status_code == 422 and "template" in unprocessable(created)
    assert "heavy" not in await _ids(client, auth, include_inactive=True)
