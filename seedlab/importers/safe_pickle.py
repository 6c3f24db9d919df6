"""A restricted unpickler for the pickles research releases ship (Zhong et al.'s
``decaying/*.pkl`` and ``correctness/*.pkl``).

A pickle names functions to call while it loads; ``pickle.load`` calls whatever it names
(``os.system``, ``builtins.eval`` ...). ``load``/``loads`` here resolve only an allowlist:

* builtin containers and scalars: ``dict``, ``list``, ``tuple``, ``set``, ``frozenset``,
  ``str``, ``bytes``, ``int``, ``float``, ``bool``, ``complex`` (``None`` needs no global);
* numpy arrays, scalars and dtypes, through the globals numpy's own pickles use:
  ``numpy.ndarray``, ``numpy.dtype``, ``numpy[._]core.multiarray._reconstruct``,
  ``numpy[._]core.multiarray.scalar`` and ``numpy[._]core.numeric._frombuffer`` (what
  protocol 5, Python's default, writes for a contiguous array: it only wraps a bytes buffer
  in an array, so it is as safe as ``_reconstruct``);
* ``_codecs.encode`` with the ``latin1`` codec only (how protocol 2 writes ``bytes``).

Everything else, ``collections.OrderedDict`` included, is refused with an ``InputError``
that names the file and the refused global. Callables that build objects from the
pickle's own arguments are wrapped where an argument could do harm: ``bytes(n)`` with an
integer (an ``n``-byte allocation) is refused, ``_reconstruct`` only builds plain
``ndarray`` objects.
"""

from __future__ import annotations

import builtins
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seedlab.errors import InputError
from seedlab.importers import inputs

EXPECTED = ("only builtin containers (dict, list, tuple, set, frozenset), str, bytes, numbers,"
            " None and numpy arrays, scalars or dtypes")

_BUILTIN_NAMES = {"dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "bool",
                  "complex"}


def _safe_bytes(*args: Any) -> bytes:
    if args and isinstance(args[0], int):
        raise pickle.UnpicklingError("bytes(<int>) is refused (it allocates memory)")
    return bytes(*args)


def _safe_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    if not isinstance(obj, str) or encoding.lower().replace("-", "") not in ("latin1", "utf8"):
        raise pickle.UnpicklingError(f"_codecs.encode with codec {encoding!r} is refused")
    return obj.encode(encoding, errors)


class _NdarrayType:
    """Stands in for ``numpy.ndarray`` in a pickle: it is only ever an argument of
    ``_reconstruct``, never called (``ndarray(shape)`` could allocate any amount)."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayType()


def _safe_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # The real shape and data come with the BUILD state (ndarray.__setstate__), which
    # checks the data length against the shape; start empty so no size is trusted here.
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError(f"only plain numpy.ndarray is admitted, not {subtype!r}")
    return np.ndarray.__new__(np.ndarray, (0,), dtype)


def _safe_frombuffer(buf: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)):
        raise pickle.UnpicklingError("numpy _frombuffer needs a bytes buffer")
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError("numpy _frombuffer needs a numpy dtype")
    if dtype.hasobject:
        raise pickle.UnpicklingError("numpy _frombuffer with an object dtype is refused")
    # numpy's own _frombuffer: a read-only view reshaped; copy so the result is writable.
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order).copy(order="K")


def _numpy_scalar() -> Callable[..., Any]:
    from numpy._core.multiarray import scalar

    return scalar


def _allowed(module: str, name: str) -> Any | None:
    """The object a (module, name) global resolves to, or None if it is not admitted."""
    if module in ("builtins", "__builtin__"):
        if name == "bytes":
            return _safe_bytes
        if name in _BUILTIN_NAMES:
            return getattr(builtins, name)
        return None
    if module == "_codecs" and name == "encode":
        return _safe_encode
    if module == "numpy":
        return {"ndarray": _NDARRAY, "dtype": np.dtype}.get(name)
    if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        if name == "_reconstruct":
            return _safe_reconstruct
        if name == "scalar":
            return _numpy_scalar()
        return None
    if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
        return _safe_frombuffer
    return None


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only the allowlisted globals (module docstring)."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed(module, name)
        if found is None:
            raise InputError(
                self.source,
                f"the pickle refers to {module}.{name}, which seedlab refuses to load"
                " (a pickle can run code through such references)",
                expected=EXPECTED,
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise InputError(self.source, f"the pickle uses a persistent id {pid!r}",
                         expected=EXPECTED)


def loads(data: bytes, source: str | Path = "<bytes>") -> Any:
    """Unpickle ``data`` admitting only the allowlisted globals; ``source`` names the input
    in error messages. Raises ``InputError`` for refused globals and corrupt data."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), str(source)).load()
    except InputError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError, OverflowError, UnicodeDecodeError,
            RecursionError) as exc:
        raise InputError(source, f"not a readable pickle: {type(exc).__name__}: {exc}",
                         expected=EXPECTED) from None


# A pickle is read whole before it is unpickled; the releases' largest is 40 MB.
PICKLE_LIMIT = 4 << 30


def load(path: str | Path, *, root: str | Path | None = None) -> Any:
    """Unpickle the file at ``path`` admitting only the allowlisted globals. The file must be
    a regular file of at most ``PICKLE_LIMIT`` bytes (inside ``root`` when given)."""
    path = Path(path)
    data = inputs.read_bytes(path, limit=PICKLE_LIMIT, root=Path(root) if root else None,
                             what="a pickle file")
    return loads(data, source=path)
