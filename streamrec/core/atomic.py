"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Every file another process may read while it is written (a model card, a vocabulary, the pin, the
stack file, a cache) goes through :func:`write_bytes_atomic` or one of its two forms: the bytes
are written under a hidden temporary name in the same directory (same filesystem) and renamed
onto the final name with :func:`os.replace`. Whole directories (model versions) are published
by :func:`streamrec.core.versions.publish`, which renames a staged directory the same way.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "state.json"
>>> write_json_atomic(path, {"version": 3})
>>> json.loads(path.read_text())
{'version': 3}
>>> [p.name for p in path.parent.iterdir()]  # no temporary file left behind
['state.json']
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def temporary_name(path: Path) -> Path:
    """A hidden, unique name beside ``path`` to write it under first."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it onto ``path``."""
    tmp = temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> None:
    replace_atomically(path, lambda tmp: tmp.write_bytes(data))


def write_json_atomic(path: Path, data: Any, *, indent: int | None = 2) -> None:
    write_bytes_atomic(path, json.dumps(data, indent=indent).encode())


def copy_file_atomic(source: Path, destination: Path) -> None:
    """Copy ``source`` (contents and permission bits) onto ``destination`` atomically."""
    replace_atomically(destination, lambda tmp: shutil.copy2(source, tmp))
