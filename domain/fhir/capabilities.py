"""What the FHIR routes do, declared by the routes themselves: the CapabilityStatement is generated from
this registry, so it cannot claim an interaction no route serves (or leave out one a route serves).

A route declares itself with `@CAPABILITIES.declares("read", types)` (type-level interactions: read, vread,
create, update, search-type) or `declares("transaction")` (system level); `conditional=True` on create and
update says the route honours `If-None-Exist` or a search URL. `operation` declares an operation such as
`$everything`, and `includes` the `_include` values a search resolves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

TYPE_INTERACTIONS = (
    *("read", "vread", "update", "patch", "delete"),
    *("history-instance", "history-type", "create", "search-type"),
)
SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")


DECLARED = "__fhir_declares__"  # set on each declared route (tests check no FHIR route goes undeclared)


def _marked(what: str) -> Callable[[F], F]:
    def mark(route: F) -> F:
        setattr(route, DECLARED, what)
        return route

    return mark


@dataclass(frozen=True)
class Operation:
    """A FHIR operation a route serves (`$everything` on Patient)."""

    name: str
    definition: str


@dataclass
class Capabilities:
    """The interactions each resource type supports, and the system's."""

    by_type: dict[str, dict[str, None]] = field(default_factory=dict)
    system: dict[str, None] = field(default_factory=dict)
    conditional_create: set[str] = field(default_factory=set)
    conditional_update: set[str] = field(default_factory=set)
    operations: dict[str, list[Operation]] = field(default_factory=dict)
    includes: dict[str, list[str]] = field(default_factory=dict)

    def declares(
        self, interaction: str, types: Iterable[str] = (), *, conditional: bool = False
    ) -> Callable[[F], F]:
        """A decorator recording that the route it decorates serves `interaction` (on `types`)."""
        kinds = list(types)
        if interaction in SYSTEM_INTERACTIONS:
            self.system[interaction] = None
        elif interaction in TYPE_INTERACTIONS and kinds:
            for kind in kinds:
                self.by_type.setdefault(kind, {})[interaction] = None
        else:
            raise ValueError(f"not a FHIR interaction (or no types named): {interaction}")
        if conditional:
            target = {"create": self.conditional_create, "update": self.conditional_update}[interaction]
            target.update(kinds)

        return _marked(interaction)

    def operation(self, resource_type: str, name: str, definition: str) -> Callable[[F], F]:
        """A decorator recording that the route serves the operation `name` on `resource_type`."""
        self.operations.setdefault(resource_type, []).append(Operation(name, definition))
        return _marked(name)

    def include(self, resource_type: str, *values: str) -> None:
        """Record the `_include` values a search of `resource_type` resolves."""
        self.includes.setdefault(resource_type, []).extend(values)

    def interactions(self, resource_type: str) -> list[str]:
        """The interactions declared for `resource_type`, in declaration order."""
        return list(self.by_type.get(resource_type, {}))

    def supports(self, resource_type: str, interaction: str) -> bool:
        """Whether `interaction` is declared for `resource_type`."""
        return interaction in self.by_type.get(resource_type, {})
