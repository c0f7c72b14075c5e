"""Secrets kept in owner-only files of the data directory, made on first use: how `prm run` (and the CLI
beside it) gets keys without setup in development. Production sets them in the environment instead."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def key_file(path: Path, new: Callable[[], str]) -> str:
    """The secret kept in `path`, written there first (mode 0600) from `new()` when the file is missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of the same data dir made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(new() + "\n")
    return path.read_text().strip()
