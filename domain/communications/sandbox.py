"""The Jinja2 sandbox message templates render in, with a budget: a tenant's template runs on the same
machine as every other tenant's requests, so it may neither run long nor build huge values.

Jinja's own sandbox keeps a template away from Python's internals; this one also bounds its cost:
- steps: every loop iteration and every call (a macro, a method, `range`) counts one, `MAX_STEPS` in all per
  render, and a render stops once it has run `MAX_RENDER_SECONDS` (checked at each step);
- values: every string or collection it builds holds at most `MAX_VALUE` characters or items, refused
  before it is built where an argument sizes it (`'x' * n`, `'x'|center(n)`, `'%0nd' % 1`, `s.replace`,
  `sep.join`, `~`, `'{:n}'.format`), and checked after every operation, filter and call otherwise;
- numbers: integers stay under `MAX_INT_BITS` (`9 ** 99 ** 9` is refused, not computed);
- `range()` gives at most `MAX_LOOP_ITEMS`, and `lipsum` is gone (no message needs filler text);
- size: a template holds at most `MAX_TEMPLATE_NODES` elements, so compiling it stays quick too;
- the environment is the immutable sandbox: a template cannot grow a list in place.
Whatever goes past a bound is a `SecurityError` naming the bound (the caller's `TemplateError`: a 422).
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from typing import Any

from jinja2 import Template, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_RENDERED_CHARS = 20_000  # far past any SMS (1,600) or WhatsApp (4,096) body; an email's text fits
MAX_VALUE = MAX_RENDERED_CHARS  # characters of a string, items of a list, a template may build
MAX_LOOP_ITEMS = 1_000  # `range()` in a template
MAX_STEPS = 10_000  # loop iterations and calls in one render
# A backstop behind the step budget (which alone bounds the work, deterministically): wide enough that a
# legitimate render paused by a busy machine is never refused, since a journey's message refused here fails
# for good.
MAX_RENDER_SECONDS = 1.0
MAX_INT_BITS = 1_024  # ~308 digits
MAX_POWER = 64
MAX_JSON_INDENT = 8
# Compiling costs ~0.1 ms an element (parse, code generation, Python's compile, the variables' analysis); a
# long email with its conditions holds a few hundred.
MAX_TEMPLATE_NODES = 1_000

_TOO_BIG = f"a template may build strings and lists of at most {MAX_VALUE} characters or items"
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)
_DIGITS = re.compile(r"\d+")


@dataclass
class _Budget:
    steps: int
    deadline: float


_budget: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _step() -> None:
    """Count one loop iteration or call of the render under way."""
    budget = _budget.get()
    if budget is None:
        raise SecurityError("a template renders only through sandbox.render")
    budget.steps -= 1
    if budget.steps < 0:
        raise SecurityError(f"a template may run at most {MAX_STEPS} loop iterations and calls")
    if time.monotonic() > budget.deadline:
        raise SecurityError(f"a template may take at most {MAX_RENDER_SECONDS} seconds to render")


def _size(value: Any) -> int:
    """How much room `value` takes, as this module counts it (a number: 1)."""
    return len(value) if isinstance(value, str | bytes | list | tuple | dict | set | frozenset) else 1


def _fits(size: int) -> None:
    if size > MAX_VALUE:
        raise SecurityError(_TOO_BIG)


def _bounded(value: Any) -> Any:
    """`value`, once it is known to be within the bounds."""
    _fits(_size(value))
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise SecurityError(f"a template may use integers of at most {MAX_INT_BITS} bits")
    return value


def _check_width(width: Any) -> None:
    if isinstance(width, int) and width > MAX_VALUE:
        raise SecurityError(_TOO_BIG)


def _check_percent_format(fmt: str, args: Any) -> None:
    """Refuse `fmt % args` when a width or precision would make it too large (`'%0300000000d' % 1`)."""
    values = (
        list(args.values())
        if isinstance(args, Mapping)
        else list(args if isinstance(args, tuple) else (args,))
    )
    longest = max((_size(v) for v in values), default=0)
    directives = 0
    for width, precision, _ in _PERCENT_SPEC.findall(fmt):
        if "*" in (width, precision):
            raise SecurityError("a template's % format may not take its width from the arguments")
        _check_width(int(width or 0))
        _check_width(int(precision or 0))
        directives += 1
    _fits(len(fmt) + directives * longest)


def _check_brace_format(fmt: str) -> None:
    """Refuse `fmt.format(...)` when a field's width or precision would make it too large."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises its own error
    for _, _, spec, _ in fields:
        if spec and "{" in spec:
            raise SecurityError("a template's format spec may not take its width from the arguments")
        for digits in _DIGITS.findall(spec or ""):
            _check_width(int(digits))


def _joined_size(separator: str, items: list[Any]) -> int:
    return sum(_size(item) for item in items) + len(separator) * max(len(items) - 1, 0)


def _replaced_size(text: str, old: str, new: str, count: int = -1) -> int:
    found = text.count(old) if old else len(text) + 1
    if count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _check_str_method(name: str, text: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a str method call whose result an argument would make too large; returns the arguments (a join's
    items read once, into a list)."""
    if name in ("center", "ljust", "rjust", "zfill") and args:
        _check_width(args[0])
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        _fits(len(text) + text.count("\t") * max(int(tabsize), 0))
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        _fits(_replaced_size(text, args[0], args[1], *args[2:3]))
    elif name == "join" and args:
        items = list(args[0])
        _fits(_joined_size(text, items))
        return (items, *args[1:])
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((_size(v) for v in args[0].values()), default=1)
        _fits(len(text) * max(longest, 1))
    return args


class _Bounding(NodeTransformer):
    """Routes every loop's items and every `~` through the environment's counted, bounded versions."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        """`for x in items` becomes `for x in environment.counted(items)`."""
        self.generic_visit(node)
        node.iter = nodes.Call(nodes.EnvironmentAttribute("counted"), [node.iter], [], None, None)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        """`a ~ b` becomes `environment.joined(a, b)`."""
        self.generic_visit(node)
        return nodes.Call(nodes.EnvironmentAttribute("joined"), list(node.nodes), [], None, None)


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A built-in filter, refusing arguments that would make its result too large, and checking its result."""
    passes_first = getattr(fn, "jinja_pass_arg", None) is not None

    @wraps(fn)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        head, value, rest = args[: int(passes_first)], args[int(passes_first)], args[int(passes_first) + 1 :]
        if name in ("center", "slice"):
            _check_width(rest[0] if rest else kwargs.get("width", kwargs.get("slices", 0)))
        elif name == "indent":
            width = rest[0] if rest else kwargs.get("width", 4)
            lines = str(value).count("\n") + 1
            _fits(len(str(value)) + lines * (len(width) if isinstance(width, str) else max(int(width), 0)))
        elif name == "tojson":
            indent = rest[0] if rest else kwargs.get("indent")
            if isinstance(indent, int) and indent > MAX_JSON_INDENT:
                raise SecurityError(f"tojson's indent is at most {MAX_JSON_INDENT} in a template")
        elif name == "format" and isinstance(value, str):
            _check_percent_format(value, kwargs or rest)
        elif name == "replace" and len(rest) >= 2:
            _fits(_replaced_size(str(value), str(rest[0]), str(rest[1]), *rest[2:3]))
        elif name == "join":
            value = list(value)
            separator = rest[0] if rest else kwargs.get("d", "")
            _fits(_joined_size(str(separator), value))
        elif name == "sum":
            start = rest[1] if len(rest) > 1 else kwargs.get("start", 0)
            if not isinstance(start, int | float):
                raise SecurityError("sum adds numbers in a template")
        return _bounded(fn(*head, value, *rest, **kwargs))

    return bounded


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with a budget of steps, time and value sizes (see the module's docstring)."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)
        self.globals["range"] = _bounded_range
        self.filters = {name: _bounded_filter(name, fn) for name, fn in self.filters.items()}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """Parse, refuse a template too large to compile quickly, then route loops and `~` through the counted
        versions: the one hook both `parse` and `compile` go through (Jinja gives extensions no hook on the
        whole tree)."""
        tree = super()._parse(source, name, filename)
        if sum(1 for _ in tree.find_all(nodes.Node)) > MAX_TEMPLATE_NODES:
            raise TemplateSyntaxError(
                f"a template may hold at most {MAX_TEMPLATE_NODES} elements (variables, filters, tags)", 1
            )
        bounded = _Bounding().visit(tree)
        assert isinstance(bounded, nodes.Template)
        return bounded

    def counted(self, items: Iterable[Any]) -> Iterator[Any]:
        """A loop's items, each counted as a step."""
        for item in items:
            _step()
            yield item

    def joined(self, *parts: Any) -> str:
        """`a ~ b ~ ...`, refused when it would be too long."""
        texts = [str(part) for part in parts]
        _fits(sum(len(t) for t in texts))
        return "".join(texts)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Refuse an operation whose result would be too large before computing it."""
        if operator == "+" and not isinstance(left, int | float):
            _fits(_size(left) + _size(right))
        elif operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    _fits(len(seq) * times)
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise SecurityError(f"a template may use integers of at most {MAX_INT_BITS} bits")
        elif operator == "**" and isinstance(right, int | float):
            if abs(right) > MAX_POWER or (
                isinstance(left, int) and left.bit_length() * abs(right) > MAX_INT_BITS
            ):
                raise SecurityError("a power in the template is too large")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left, right)
        return _bounded(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` / `format_map`, refused when a width in the string would make it too large."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_brace_format(value.__self__)
        return wrapped

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Count the call as a step; refuse arguments that would make a str method's result too large."""
        _step()
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level: its items count too
            args = (__self.counted(args[0]), *args[1:])
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            args = _check_str_method(getattr(__obj, "__name__", ""), owner, args, kwargs)
        return _bounded(super().call(__context, __obj, *args, **kwargs))


def _bounded_range(*args: int) -> range:
    values = range(*args)
    if len(values) > MAX_LOOP_ITEMS:
        raise SecurityError(f"range() in a template is limited to {MAX_LOOP_ITEMS} items")
    return values


def render(template: Template, variables: dict[str, Any]) -> str:
    """Render `template` within the budget; the text is bounded as it streams (a runaway loop stops early).
    Raises SecurityError past a bound, and whatever the template itself raises."""
    token = _budget.set(_Budget(steps=MAX_STEPS, deadline=time.monotonic() + MAX_RENDER_SECONDS))
    try:
        rendered: list[str] = []
        size = 0
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                raise SecurityError(f"the template renders longer than {MAX_RENDERED_CHARS} characters")
            rendered.append(chunk)
        return "".join(rendered)
    finally:
        _budget.reset(token)
