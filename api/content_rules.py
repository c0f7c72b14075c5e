"""The rules the API checks beyond what JSON Schema can say, stated in the OpenAPI as `x-rules`.

JSON Schema states the shape of a request: types, formats, patterns, lengths, ranges, enums. Some rules go
further: a phone number valid in its region, a language tag in IANA's registry, `end_time` after
`start_time`, a date between 1900 and 2199. Pydantic runs them as validators; here each one that a request
model or query parameter runs is named in the schema next to what it checks: `x-rules` on the property or
parameter (a field's rules) or on the object (rules across its fields), each rule the first line of the
validator's docstring; an operation's rules across its parameters or against what is stored (`rules()`) on
the operation; what every request must keep (no NUL) on the document's `info`. A tagged union's tag is made
required in each variant, as pydantic needs it. A schema-valid request refused with a 422 was refused by one
of these rules: tests/test_fuzz.py holds the API to it.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import AfterValidator, BaseModel, PlainValidator

from domain.schemas import DATE_RANGE_RULE, temporal_kind

RULES = "x-rules"
_RULES = (AfterValidator, PlainValidator)
# Validators that check what the schema already states (a date's format, a field that is not nullable), or
# that check no field of their own (the dates' range, stated on each date field).
_STATED_BY_THE_SCHEMA = {
    "_json_types",
    "_iso_date",
    "_iso_date_time",
    "_dates_in_range",
    "_required_fields_are_not_cleared",
    "_not_null",
}


def _is_rule(func: Callable[..., Any], mode: str = "after") -> bool:
    """Whether a validator refuses values by a rule of its own: not a normaliser run before the type's
    check (`mode="before"`), not an anonymous one (a lower-casing lambda), not one the schema states."""
    name = getattr(getattr(func, "__func__", func), "__name__", "")
    return mode in ("after", "plain") and name != "<lambda>" and name not in _STATED_BY_THE_SCHEMA


def rules(*texts: str) -> dict[str, Any]:
    """`openapi_extra` naming an operation's rules across its parameters, or against what is stored (a
    validator of a model states its own)."""
    return {RULES: list(texts)}


# What the API refuses in every request (`api.input_guard`): stated once, on the document's `info`.
EVERY_REQUEST = ["No NUL character anywhere in a request (PostgreSQL's text cannot hold one)."]


def rule_text(func: Callable[..., Any]) -> str:
    """What a validator checks: the first line of its docstring (its name when it has none)."""
    func = getattr(func, "__func__", func)
    doc = inspect.getdoc(func)
    return doc.splitlines()[0] if doc else func.__name__.strip("_").replace("_", " ")


def _annotation_rules(annotation: Any) -> Iterator[str]:
    """The rules of the validators attached to a type (`Annotated[str, AfterValidator(...)]`), through
    `Optional` and unions."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *metadata = get_args(annotation)
        yield from _annotation_rules(inner)
        for item in metadata:
            if isinstance(item, _RULES) and _is_rule(item.func):
                yield rule_text(item.func)
    elif origin in (Union, types.UnionType, list, set, tuple, dict):
        for arg in get_args(annotation):
            yield from _annotation_rules(arg)


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models a type names (through unions, lists, `Annotated`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models(arg)


def model_rules(model: type[BaseModel]) -> tuple[list[str], dict[str, list[str]]]:
    """A model's rules across its fields, and each field's own rules."""
    decorators = model.__pydantic_decorators__
    across = [
        rule_text(d.func) for d in decorators.model_validators.values() if _is_rule(d.func, d.info.mode)
    ]
    fields: dict[str, list[str]] = {}
    for name, field in model.model_fields.items():
        rules = list(_annotation_rules(field.annotation))
        rules += [
            rule_text(item.func)
            for item in field.metadata
            if isinstance(item, _RULES) and _is_rule(item.func)
        ]
        for d in decorators.field_validators.values():
            if name in d.info.fields and _is_rule(d.func, d.info.mode):
                rules.append(rule_text(d.func))
        if temporal_kind(field.annotation) is not None:
            rules.append(DATE_RANGE_RULE)
        if rules:
            fields[field.alias or name] = list(dict.fromkeys(rules))
    return list(dict.fromkeys(across)), fields


def _query_params(dependant: Dependant) -> Iterator[Any]:
    """A route's query parameters, those of its dependencies too (a period, a page)."""
    yield from dependant.query_params
    for sub in dependant.dependencies:
        yield from _query_params(sub)


def _api_routes(app: FastAPI) -> Iterator[tuple[APIRoute, str]]:
    """The app's API routes in its schema, each with its path as served (its routers' prefixes added)."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.include_in_schema and context.path_format:
            yield route, context.path_format


def _request_models(app: FastAPI) -> dict[str, type[BaseModel]]:
    """Every model a request body can hold, by its name (the `title` of its schema), nested ones too."""
    found: dict[str, type[BaseModel]] = {}
    pending = [
        model
        for route, _ in _api_routes(app)
        if route.body_field is not None
        for model in _models(route.body_field.field_info.annotation)
    ]
    while pending:
        model = pending.pop()
        if model.__name__ in found:
            continue
        found[model.__name__] = model
        for field in model.model_fields.values():
            pending.extend(_models(field.annotation))
    return found


def _tags_required(schema: dict[str, Any]) -> None:
    """A tagged union's tag is required in each of its variants (`{"type": "manual"}`, `{"policy":
    "never"}`): pydantic picks the variant by it, though the variant's model gives it a default."""
    components = schema.get("components", {}).get("schemas", {})
    pending: list[Any] = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            tag = node.get("discriminator", {}).get("propertyName")
            for ref in node.get("discriminator", {}).get("mapping", {}).values() if tag else ():
                variant = components.get(ref.rsplit("/", 1)[-1], {})
                if tag in variant.get("properties", {}) and tag not in variant.setdefault("required", []):
                    variant["required"].append(tag)
            pending.extend(node.values())


# Whitespace as pydantic trims it (Unicode's White_Space, which Python's `\s` exceeds by U+001C..U+001F).
_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _trimmed_length(at_least: int, at_most: int | None) -> str:
    """A pattern a text matches when, without its surrounding whitespace, it is `at_least` to `at_most`
    characters long: what a request model that trims its texts (`str_strip_whitespace`) then checks."""
    space, word = f"[{_SPACE}]*", f"[^{_SPACE}]"
    lengths = []
    if at_least == 0:
        lengths.append("")
    if at_least <= 1 and (at_most is None or at_most >= 1):
        lengths.append(word)
    if at_most is None or at_most >= 2:
        upto = "" if at_most is None else str(at_most - 2)
        lengths.append(f"{word}[\\s\\S]{{{max(at_least, 2) - 2},{upto}}}{word}")
    return f"^{space}(?:{'|'.join(lengths)}){space}$"


def _trimmed_texts(component: dict[str, Any]) -> None:
    """A trimming model's texts with a length range state it as it is checked, after trimming (spaces alone
    are too short; surrounding spaces do not make a text too long), as a pattern instead of the lengths."""
    for prop in component.get("properties", {}).values():
        for text in [prop, *prop.get("anyOf", [])]:
            bounded = "minLength" in text or "maxLength" in text
            if text.get("type") == "string" and bounded and "pattern" not in text and "format" not in text:
                at_least, at_most = text.pop("minLength", 0), text.pop("maxLength", None)
                text["pattern"] = _trimmed_length(at_least, at_most)


def state_content_rules(app: FastAPI) -> None:
    """Make `app.openapi()` name, with `x-rules`, every validator its request models and query parameters
    run beyond what their JSON Schema states."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema["info"][RULES] = EVERY_REQUEST
        _tags_required(schema)
        models = _request_models(app)
        for component in schema.get("components", {}).get("schemas", {}).values():
            model = models.get(component.get("title", ""))
            if model is None:
                continue
            if model.model_config.get("str_strip_whitespace"):
                _trimmed_texts(component)
            across, fields = model_rules(model)
            if across:
                component[RULES] = across
            for name, rules in fields.items():
                prop = component.get("properties", {}).get(name)
                if prop is not None:
                    prop[RULES] = rules
        for route, path in _api_routes(app):
            for param in _query_params(route.dependant):
                rules = list(dict.fromkeys(_annotation_rules(param.field_info.annotation)))
                rules += [
                    rule_text(item.func)
                    for item in param.field_info.metadata
                    if isinstance(item, _RULES) and _is_rule(item.func)
                ]
                if not rules:
                    continue
                for method in route.methods or ():
                    operation = schema["paths"].get(path, {}).get(method.lower(), {})
                    for declared in operation.get("parameters", []):
                        if declared["in"] == "query" and declared["name"] == (param.alias or param.name):
                            declared[RULES] = list(dict.fromkeys(rules))
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
