"""How every page shows numbers: one format for checkpoints, one for tables.

A reader compares numbers across rows and pages, so a table shows every float column with
the same number of decimals (``0.0440`` beside ``0.0069``, not ``0.044`` beside
``0.0069``), p-values with their floor (``< 0.001``), and checkpoints as short decimals
(``3.33``, not ``3.33333``). Pages call :func:`show_table` instead of ``st.dataframe``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

DECIMALS = 4


def checkpoint_text(value: Any) -> str:
    """A checkpoint (epochs) as a reader writes it: ``2``, ``0.67``, ``3.33``; ``last``
    stays ``last``."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def p_value_text(p: float, floor: float | None = None) -> str:
    """A p-value to three decimals; at or below the resolution ``floor`` of the test that
    gave it (e.g. ``1 / nboot``), ``< floor``, since the true value is only known to be
    smaller."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "-"
    if floor is not None and p <= floor:
        return f"< {floor:.3g}"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}"


def number_columns(frame: pd.DataFrame, decimals: int = DECIMALS,
                   overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``column_config`` giving every float column of ``frame`` ``decimals`` decimals
    (``overrides`` win for the columns they name)."""
    config: dict[str, Any] = {
        str(name): st.column_config.NumberColumn(format=f"%.{decimals}f")
        for name, dtype in frame.dtypes.items() if pd.api.types.is_float_dtype(dtype)
    }
    config.update(overrides or {})
    return config


def show_table(frame: pd.DataFrame, *, key: str | None = None, decimals: int = DECIMALS,
               column_config: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """``st.dataframe`` with one number format for every float column, stretched to the
    page's width so that wide tables keep their last column in view."""
    kwargs.setdefault("hide_index", True)
    kwargs.setdefault("width", "stretch")
    return st.dataframe(frame, key=key,
                        column_config=number_columns(frame, decimals, column_config), **kwargs)
