"""Write to a temporary name, then ``os.replace`` into place: readers see the whole file
(or folder) or none of it.

``replacing(target)`` is the one way seedlab does this: the cube cache uses it, and the
job runners may.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

TEMPORARY_PREFIX = ".tmp-"  # names a cleaner may skip or remove


def temporary_path(target: Path) -> Path:
    """A fresh name beside ``target`` (same folder, so the rename is atomic), starting
    with ``TEMPORARY_PREFIX``."""
    return target.parent / f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}-{target.name}"


def remove(path: Path) -> None:
    """Delete a temporary file or folder; quietly if it is already gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; the caller writes a file or a folder
    there. On a normal exit it is renamed onto ``target``; on an error, or when the rename
    fails (``OSError``, e.g. a folder that another process put in place first, re-raised),
    it is removed."""
    tmp = temporary_path(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        remove(tmp)
        raise
