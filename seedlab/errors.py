"""Errors that speak to the user: which file, which line or field, what was expected."""

from __future__ import annotations

from pathlib import Path


class SeedlabError(Exception):
    """Base class for every error seedlab raises on purpose."""


class InputError(SeedlabError):
    """Bad input file. The message names the file, the line or field, and what was expected.

    ``line`` is 1-based, as an editor shows it.
    """

    def __init__(
        self,
        path: str | Path | None,
        problem: str,
        *,
        line: int | None = None,
        field: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.problem = problem
        self.expected = expected
        where = _shown(self.path) if self.path is not None else "<input>"
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field {field!r}"
        message = f"{where}: {problem}"
        if expected:
            message += f" (expected {expected})"
        super().__init__(message)


def _shown(path: str) -> str:
    """A path as one line of text: a name holding a newline or another control character
    is shown with it escaped (``mnli\\n``)."""
    return path if path.isprintable() else path.encode("unicode_escape").decode("ascii")


class DuplicateRunError(SeedlabError):
    """A run with the same key is already in the store with different predictions."""


class StoreError(SeedlabError):
    """The store is in a state the operation cannot work with."""
