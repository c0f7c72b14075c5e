"""Logging set-up that keeps PHI out of the logs."""

from __future__ import annotations

import logging


class DropQueryString(logging.Filter):
    """Uvicorn's access log prints the path with its query string (`?query=Jane`): keep only the path."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def configure_logging(level: str) -> None:
    """Plain structured-enough logs on stderr, with the access-log filter installed."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("uvicorn.access").addFilter(DropQueryString())
