"""The FHIR documents around resources: searchset Bundles with paging links, OperationOutcomes, and the
CapabilityStatement that says what this server does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fhir.resources.R4B.resource import Resource

from domain.fhir.capabilities import Capabilities
from domain.fhir.render import as_json, model
from domain.fhir.search import CURSOR_PARAM, MAX_COUNT, SEARCHABLE, SORT_PARAM, SearchableType, SearchResult

FHIR_VERSION = "4.0.1"
FHIR_JSON = "application/fhir+json"

# HTTP status -> the OperationOutcome issue code (FHIR's IssueType value set).
ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    412: "conflict",  # a stale If-Match
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    503: "transient",
}


def operation_outcome(
    status: int, diagnostics: str, *, severity: str = "error", expression: Sequence[str] = ()
) -> dict[str, Any]:
    """An OperationOutcome with one issue: its code from the HTTP status, `diagnostics` in words."""
    issue: dict[str, Any] = {
        "severity": severity,
        "code": "informational" if severity == "information" else _issue_code(status),
        "diagnostics": diagnostics,
    }
    if expression:
        issue["expression"] = list(expression)
    return as_json(model({"resourceType": "OperationOutcome", "issue": [issue]}))


def _information(diagnostics: str, expression: str | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "information", "code": "informational", "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return issue


def _issue_code(status: int) -> str:
    return ISSUE_CODES.get(status, "exception" if status >= 500 else "processing")


def _page_url(
    base: str, resource_type: str, params: Sequence[tuple[str, str]], count: int, cursor: str | None
) -> str:
    kept = [(k, v) for k, v in params if k not in ("_count", CURSOR_PARAM)]
    paging = [("_count", str(count))] + ([(CURSOR_PARAM, cursor)] if cursor else [])
    return f"{base}/{resource_type}?" + urlencode([*kept, *paging])


def searchset(
    base: str,
    resource_type: str,
    params: Sequence[tuple[str, str]],
    resources: Sequence[Resource],
    result: SearchResult,
    included: Sequence[Resource] = (),
) -> dict[str, Any]:
    """A searchset Bundle of one page, with `self`, `first`, (when more follow) `next` and (when some come
    before) `previous` links; resources
    an `_include` brought come after the matches, in mode `include`."""
    count = result.paging.count
    links = [
        {"relation": "self", "url": _page_url(base, resource_type, params, count, result.paging.cursor)},
        {"relation": "first", "url": _page_url(base, resource_type, params, count, None)},
    ]
    for relation, cursor in (("next", result.next_cursor), ("previous", result.previous_cursor)):
        if cursor:
            links.append({"relation": relation, "url": _page_url(base, resource_type, params, count, cursor)})
    entries = [
        {
            "fullUrl": f"{base}/{resource.get_resource_type()}/{resource.id}",
            "resource": as_json(resource),
            "search": {"mode": mode},
        }
        for mode, group in (("match", resources), ("include", included))
        for resource in group
    ]
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": datetime.now(UTC).isoformat(),
        "total": result.total,
        "link": links,
        "entry": entries or None,
    }
    return as_json(model(bundle))


def entry_outcome(result: Any) -> dict[str, Any] | None:
    """The informational OperationOutcome of an imported resource (its note, and each optional element
    left out with where it was), or None when there is nothing to say."""
    issues = [_information(result.note)] if result.note else []
    issues += [_information(d.reason, d.expression) for d in result.dropped]
    return as_json(model({"resourceType": "OperationOutcome", "issue": issues})) if issues else None


def transaction_response(results: Sequence[Any]) -> dict[str, Any]:
    """The transaction-response Bundle: one entry per request entry, in order, with its status, location
    and (when there is something to say) an informational outcome."""
    entries = []
    for result in results:
        response: dict[str, Any] = {"status": result.status}
        if result.location:
            response["location"] = result.location
        if result.last_modified:
            response["lastModified"] = result.last_modified.isoformat()
        outcome = entry_outcome(result)
        if outcome is not None:
            response["outcome"] = outcome
        entries.append({"response": response})
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "timestamp": datetime.now(UTC).isoformat(),
        "entry": entries or None,
    }
    return as_json(model(bundle))


def capability_statement(base: str, software_version: str, capabilities: Capabilities) -> dict[str, Any]:
    """What this server does, as its routes declare it (`capabilities`): no interaction is claimed that no
    route serves."""
    resources = []
    for resource_type, searchable in SEARCHABLE.items():
        interactions = capabilities.interactions(resource_type)
        if not interactions:
            continue
        versioned = capabilities.supports(resource_type, "vread")
        resource: dict[str, Any] = {
            "type": resource_type,
            "interaction": [{"code": code} for code in interactions],
            "versioning": "versioned" if versioned else "no-version",
            "readHistory": versioned,  # vread serves past versions too (domain.fhir.history)
            "updateCreate": False,
            "conditionalCreate": resource_type in capabilities.conditional_create,
            "conditionalUpdate": resource_type in capabilities.conditional_update,
            "conditionalRead": "not-supported",
            "conditionalDelete": "not-supported",
        }
        if capabilities.supports(resource_type, "search-type"):
            resource["searchParam"] = [
                {"name": name, "type": _param_type(name), **_param_documentation(name, searchable)}
                for name in searchable.parameter_names
            ] + [_sort_parameter(searchable)]
            if resource_type in capabilities.includes:
                resource["searchInclude"] = capabilities.includes[resource_type]
        if resource_type in capabilities.operations:
            resource["operation"] = [
                {"name": op.name.removeprefix("$"), "definition": op.definition}
                for op in capabilities.operations[resource_type]
            ]
        resources.append(resource)
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "kind": "instance",
        "software": {"name": "PRM Service", "version": software_version},
        "implementation": {"description": "PRM Service FHIR R4 API", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Authenticate with an integration token (OAuth 2.0 client credentials at /oauth/token, "
                    "with a signed assertion (SMART Backend Services, private_key_jwt) or a client secret; "
                    "scope `fhir`, or SMART system/ scopes). Writes (create, update, transaction) match "
                    "records by identifier, so an import repeated creates nothing twice. "
                    f"Searches page by keyset: _count (at most {MAX_COUNT}) matches a page, the next "
                    "link's _cursor continues after the last; total only with _total=accurate; ordered by "
                    "_sort (default _lastUpdated). Unknown parameters, modifiers and sort keys are refused "
                    "(400) unless the request prefers handling=lenient, then ignored. Transaction "
                    "bundles upsert Patient, Practitioner and Appointment by "
                    "identifier, all or nothing."
                ),
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": "SMART Backend Services: OAuth 2.0 client credentials authenticated "
                    "by a JWT signed RS384 or ES384 with a registered key (or a client secret); discovery at "
                    ".well-known/smart-configuration.",
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [
                                {"url": "token", "valueUri": base.removesuffix("/fhir/R4") + "/oauth/token"}
                            ],
                        }
                    ],
                },
                "resource": resources,
                "interaction": [{"code": code} for code in capabilities.system] or None,
            }
        ],
    }
    return as_json(model(statement))


def _param_type(name: str) -> str:
    if name in ("birthdate", "date", "sent", "_lastUpdated"):
        return "date"
    if name in ("patient", "practitioner", "subject"):
        return "reference"
    if name in ("name", "family", "given"):
        return "string"
    return "token"


def _param_documentation(name: str, searchable: SearchableType) -> dict[str, str]:
    if name not in searchable.strings:
        return {}
    return {
        "documentation": "Starts with the value, in any case; modifiers :exact (the whole name part, as "
        "written) and :contains (anywhere in it, in any case)."
    }


def _sort_parameter(searchable: SearchableType) -> dict[str, str]:
    """`_sort`, declared as a special parameter with the keys it takes (FHIR has no element for these)."""
    keys = ", ".join(sorted(searchable.sort_keys))
    return {
        "name": SORT_PARAM,
        "type": "special",
        "documentation": f"Sort keys: {keys}; comma-separated, each prefixed - for descending. Default "
        "_lastUpdated; ties by id.",
    }
