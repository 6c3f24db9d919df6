"""Reading files and values a user (or a release) hands an importer, without trusting them.

Every read is of a regular file (not a device, FIFO or folder: a link to ``/dev/zero``
is refused before a byte is read), bounded by what the format can hold, and, where a
release names a file, confined to the release folder (``../outside.tsv`` or a symlink
leading out is refused). Text is strict UTF-8; a bad byte is reported by line. ``.npy``
headers are checked against the file size before an array is read, so a header claiming
a 7 TiB shape costs nothing. Values are checked before numpy sees them: integers must fit
in 64 bits, numbers must be finite.

Messages quote content only from a file the user named; for a file a release refers to
(a score file of a MultiBERTs index), ``quote`` is not used and the message gives the
line and column instead.
"""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from seedlab.errors import InputError

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
# Generous caps for formats without a natural bound (a JSON object, a label file, a long
# table); files that can be bounded (a result TSV of N rows x C probabilities) are read
# against their own bound.
JSON_LIMIT = 4 * GIB
TABLE_LIMIT = 16 * GIB
SIDECAR_LIMIT = 256 * MIB
# A number written as text: "-1.2345678901234567e-305" and a separator fit in 32 bytes;
# allow twice that for padding.
BYTES_PER_NUMBER = 64
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
QUOTE_LENGTH = 40


def quote(value: Any, length: int = QUOTE_LENGTH) -> str:
    """``repr(value)`` cut to ``length`` characters, for messages about a file the user
    named (a long or binary value is never printed whole)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= length else text[:length] + "...'"


def regular_file(path: Path, *, root: Path | None = None, what: str = "a file") -> Path:
    """``path`` if it is a regular file (inside ``root`` once links are resolved, when
    ``root`` is given); an InputError otherwise. Returns the path as given."""
    if "\0" in str(path):
        raise InputError(path, "the file name holds a NUL byte", expected=what)
    if root is not None:
        try:
            resolved = path.resolve(strict=False)
            inside = resolved.is_relative_to(root.resolve())
        except (OSError, RuntimeError):  # a link loop
            inside = False
        if not inside:
            raise InputError(path, f"leads outside the release folder {root}",
                             expected=f"{what} inside {root} (no '..' and no link out of it)")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(path, "file not found", expected=what) from None
    except OSError as exc:
        raise InputError(path, f"cannot be read: {exc.strerror or exc}", expected=what) from None
    if not stat.S_ISREG(mode):
        raise InputError(path, "is not a regular file (a folder, device or pipe)",
                         expected=what)
    return path


def check_size(path: Path, limit: int, what: str) -> int:
    """The size of ``path`` in bytes; an InputError if it is above ``limit``."""
    size = path.stat().st_size
    if size > limit:
        raise InputError(path, f"is {size:,} bytes, more than {what} can hold ({limit:,}"
                         " bytes)", expected=what)
    return size


def read_bytes(path: Path, *, limit: int, root: Path | None = None,
               what: str = "a file") -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` (a longer file, or one that
    grows while read, is an InputError)."""
    regular_file(path, root=root, what=what)
    check_size(path, limit, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped since stat
                raise InputError(path, "is not a regular file", expected=what)
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InputError(path, f"cannot be read: {exc.strerror or exc}", expected=what) from None
    if len(data) > limit:
        raise InputError(path, f"is more than {limit:,} bytes", expected=what)
    return data


def decode(path: Path, data: bytes, what: str = "UTF-8 text", line: int = 1) -> str:
    """``data`` (starting at line ``line`` of ``path``) as strict UTF-8; a bad byte is an
    InputError naming its line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line += data.count(b"\n", 0, exc.start)
        raise InputError(path, f"byte {exc.start} is not UTF-8 ({exc.reason})", line=line,
                         expected=what) from None


def read_text(path: Path, *, limit: int, root: Path | None = None,
              what: str = "UTF-8 text") -> str:
    """The text of a regular UTF-8 file of at most ``limit`` bytes."""
    return decode(path, read_bytes(path, limit=limit, root=root, what=what), what)


def read_json(path: Path, *, limit: int = JSON_LIMIT, root: Path | None = None,
              what: str = "a JSON file") -> Any:
    """Parse a JSON file (strict: ``NaN`` and ``Infinity`` are refused, as JSON has no
    such numbers)."""
    text = read_text(path, limit=limit, root=root, what=what)

    def refuse(constant: str) -> float:
        raise ValueError(f"{constant} is not a JSON number")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON: {exc.msg}", line=exc.lineno,
                         expected=what) from None
    except (ValueError, RecursionError) as exc:
        raise InputError(path, f"not valid JSON: {exc}", expected=what) from None


# ---------------------------------------------------------------------------------------
# numpy files


def _npy_header(handle: Any, path: Path, member: str | None) -> tuple[tuple[int, ...], bool,
                                                                      np.dtype]:
    where = f"{path}[{member}]" if member else path
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(handle)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(handle)
    except (ValueError, OSError, SyntaxError, EOFError) as exc:
        raise InputError(where, f"not a .npy array ({exc})",
                         expected="a .npy file written by numpy.save") from None
    raise InputError(where, f".npy format version {version}",
                     expected="a .npy file of format 1.0 or 2.0")


def _check_header(where: str | Path, shape: tuple[int, ...], dtype: np.dtype, available: int,
                  limit: int) -> None:
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
        raise InputError(where, f"holds {dtype} values", expected="a plain numeric array"
                         " (bool, int or float); object and string arrays are refused")
    needed = math.prod(shape) * dtype.itemsize
    if needed > limit:
        raise InputError(where, f"the header claims shape {shape} ({needed:,} bytes)",
                         expected=f"an array of at most {limit:,} bytes")
    if needed != available:
        raise InputError(where, f"the header claims shape {shape} of {dtype} ({needed:,} bytes)"
                         f" but the file holds {available:,} bytes of data",
                         expected="a complete .npy file")


def load_npy(path: Path, *, limit: int = 4 * GIB, root: Path | None = None) -> np.ndarray:
    """One numeric ``.npy`` array, its header checked against the file size first."""
    regular_file(path, root=root, what="a .npy file")
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            shape, fortran, dtype = _npy_header(handle, path, None)
            _check_header(path, shape, dtype, size - handle.tell(), limit)
            array = np.fromfile(handle, dtype=dtype, count=math.prod(shape))
    except OSError as exc:
        raise InputError(path, f"cannot be read: {exc.strerror or exc}",
                         expected="a .npy file") from None
    return array.reshape(shape, order="F" if fortran else "C")


def load_npz(path: Path, *, limit: int = 4 * GIB) -> dict[str, np.ndarray]:
    """Every member of an ``.npz`` as a numeric array, each header checked against the
    member's size before it is read; the total is bounded by ``limit`` bytes."""
    regular_file(path, what="a .npz file")
    arrays: dict[str, np.ndarray] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if info.file_size > limit - total:
                    raise InputError(path, f"member {name!r} is {info.file_size:,} bytes",
                                     field=name, expected=f"at most {limit:,} bytes in all")
                with archive.open(info) as handle:
                    shape, fortran, dtype = _npy_header(handle, path, name)
                    header = handle.tell()
                    _check_header(f"{path}[{name}]", shape, dtype, info.file_size - header,
                                  limit - total)
                    data = handle.read(info.file_size - header)
                total += info.file_size
                array = np.frombuffer(data, dtype=dtype, count=math.prod(shape)).copy()
                arrays[name] = array.reshape(shape, order="F" if fortran else "C")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError) as exc:
        raise InputError(path, f"not a readable .npz archive ({exc})",
                         expected="a .npz file written by numpy.savez") from None
    return arrays


# ---------------------------------------------------------------------------------------
# values


def _refuse_constant(constant: str) -> float:
    raise ValueError(f"{constant} is not a JSON number")


def json_lines(where: str | Path, lines: Iterable[str]) -> tuple[list[dict], list[int]]:
    """The JSON object on each non-blank line of ``lines`` (numbered from 1) and the line
    numbers they came from. Raises ``InputError`` naming ``where`` and the line for a line
    that is not valid JSON (``NaN`` and ``Infinity`` included: JSON has no such numbers) or
    holds a value that is not an object."""
    records: list[dict] = []
    numbers: list[int] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise InputError(where, f"not valid JSON: {exc.msg}", line=number,
                             expected="one JSON object per line") from None
        except (ValueError, RecursionError) as exc:
            raise InputError(where, f"not valid JSON: {exc}", line=number,
                             expected="one JSON object per line") from None
        if not isinstance(record, dict):
            raise InputError(where, f"a {type(record).__name__}, not an object", line=number,
                             expected="one JSON object per line")
        records.append(record)
        numbers.append(number)
    return records, numbers


def as_int64(value: Any) -> int | None:
    """An integer that fits in 64 bits, from an int, an integral finite float or the text
    of one; None otherwise (bool, 1.5, 1e30, '9' * 30, NaN, '')."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or not float(value).is_integer():
            return None
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 30:
            return None
        try:
            number = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                return None
            return as_int64(as_float)
    else:
        return None
    return number if INT64_MIN <= number <= INT64_MAX else None


def as_finite(value: Any) -> float | None:
    """A finite float from a number or its text; None otherwise (NaN, inf, 1e400, 'x')."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, str):
        if len(value) > 64:
            return None
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def is_json_scalar(value: Any) -> bool:
    """Whether ``value`` can be stored as a field of an instance: text, a bool, an integer
    that fits in 64 bits or a finite float (numpy scalars included)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (str, bool)):
        return True
    if isinstance(value, int):
        return INT64_MIN <= value <= INT64_MAX
    return isinstance(value, float) and math.isfinite(value)


def is_person_name(value: Any) -> bool:
    """Whether ``value`` is usable as a person's name (an annotator): non-empty text of at
    most 100 characters without control characters."""
    return (isinstance(value, str) and bool(value.strip()) and len(value) <= 100
            and value.isprintable())
