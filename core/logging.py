"""Logging set-up that keeps PHI out of the logs.

Log messages are written PHI-free by convention (ids, counts, class names). What convention cannot cover
is an exception's own text: a database error quotes the row it refused (`Key (email)=(jane@...)`), a
provider error quotes the phone number it rejected. So tracebacks keep their frames and exception types,
and an exception's message is printed only when it is ours and written PHI-free (`DomainError`); for a
database error the SQLSTATE and constraint name are printed instead, and SQLAlchemy never renders bound
parameters (`hide_parameters` on the engine).
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

from core.request_context import current_request_id

WITHHELD = "(message withheld: it may quote patient data)"


class DropQueryString(logging.Filter):
    """Uvicorn's access log prints the path with its query string (`?query=Jane`): keep only the path."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def _safe_text(exc: BaseException) -> str:
    """What may be printed of an exception: our domain errors' detail, a database error's SQLSTATE and
    constraint, else nothing."""
    from core.errors import DomainError  # core.errors is a leaf; imported here to keep this module light

    if isinstance(exc, DomainError):
        return f": {exc.detail}"
    diag = getattr(exc, "diag", None) or getattr(getattr(exc, "orig", None), "diag", None)
    sqlstate = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None)
    if diag is not None or sqlstate is not None:
        constraint = getattr(diag, "constraint_name", None)
        return (
            f": sqlstate {sqlstate}" + (f", constraint {constraint}" if constraint else "") + f" {WITHHELD}"
        )
    return f" {WITHHELD}" if str(exc) else ""


def format_exception_safely(
    exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
) -> str:
    """A traceback (frames and types, causes first as Python prints them) without exception messages."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts: list[str] = []
    for position, item in enumerate(reversed(chain)):
        if position:
            parts.append("\nThe above exception led to the following one:\n\n")
        frames = traceback.extract_tb(item.__traceback__ if item is not exc else tb)
        if frames:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_list(frames))
        parts.append(f"{type(item).__module__}.{type(item).__qualname__}{_safe_text(item)}\n")
    return "".join(parts).rstrip("\n")


class PhiSafeFormatter(logging.Formatter):
    """The usual format, with tracebacks that leave exception messages out (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        # Another handler may have cached its own rendering of the traceback on the record: never reuse it.
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatException(self, ei: Any) -> str:
        return format_exception_safely(*ei)

    def formatStack(self, stack_info: str) -> str:
        return stack_info  # frames only: no values


class RequestIdFilter(logging.Filter):
    """Put the current request id (`core.request_context`) on every record, as `record.request_id`
    (None outside a request and its workflows' activities)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        return True


class PhiSafeTextFormatter(PhiSafeFormatter):
    """The human format, naming the request id at the end of a line logged during a request."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return text
        first, newline, rest = text.partition("\n")  # before a traceback, if any
        return f"{first} [request_id={request_id}]{newline}{rest}"


# Extra fields worth keeping on a JSON line: Temporal's loggers put the workflow's or activity's ids here,
# the access log (`api.observability`) the answer's method, route template, status and time.
_JSON_EXTRAS = ("temporal_workflow", "temporal_activity", "http")


class JsonFormatter(PhiSafeFormatter):
    """One JSON object a line (`time`, `level`, `logger`, `message`, `request_id`, and `exception` with a
    PHI-safe traceback): what a log pipeline ingests. Same PHI rules as the text format."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        for name in _JSON_EXTRAS:
            value = getattr(record, name, None)
            if isinstance(value, dict):
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = format_exception_safely(*record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LogFormat = Literal["text", "json"]


def phi_safe_formatter(log_format: LogFormat, fmt: str = FORMAT) -> logging.Formatter:
    """The formatter of `PRM_LOG_FORMAT`: JSON lines, or the human format (`fmt`)."""
    return JsonFormatter() if log_format == "json" else PhiSafeTextFormatter(fmt)


def _add_request_id_filter(handler: logging.Handler) -> None:
    if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
        handler.addFilter(RequestIdFilter())


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Logs on stderr (`log_format`: text for humans, JSON lines for a log pipeline), the request id on
    every line logged during a request, PHI-safe tracebacks on every root handler, the access-log filter."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    # No format here names the caller's file, line, thread or process: not looking them up on every record
    # (the logging HOWTO's "Optimization") saves a frame walk per line, such as each access-log line.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for handler in logging.getLogger().handlers:
        handler.setFormatter(phi_safe_formatter(log_format))
        _add_request_id_filter(handler)
    logging.getLogger("uvicorn.access").addFilter(DropQueryString())
    for name in ("uvicorn", "uvicorn.error"):  # uvicorn's own handlers, when it configured them
        for handler in logging.getLogger(name).handlers:
            fmt = handler.formatter._fmt if handler.formatter and handler.formatter._fmt else FORMAT
            # uvicorn's `%(levelprefix)s` is a field of its own formatter only: ours would fail on it.
            fmt = fmt.replace("%(levelprefix)s", "%(levelname)s:")
            handler.setFormatter(phi_safe_formatter(log_format, fmt))
            _add_request_id_filter(handler)
    for handler in logging.getLogger("uvicorn.access").handlers:
        _add_request_id_filter(handler)  # it logs inside the request: the id is still bound
        if log_format == "json":  # the text format stays uvicorn's own (its fields are its formatter's)
            handler.setFormatter(JsonFormatter())
