"""Text from a study, shown as text: never as Markdown, HTML or a figure's markup.

Instance texts, instance ids, labels, splits, annotator names and notes come from released
files and from users. Streamlit renders Markdown (an image fetches its URL, a link is
live, ``:red[...]`` and ``$...$`` are directives, and a bare ``http://...`` becomes a link
even when its punctuation is backslash-escaped, since GitHub-flavoured autolinks are found
after escapes are read) and plotly renders a subset of HTML (``<a href>``, ``<b>``,
``<br>``) in titles, tick labels and hover text. These helpers make such a value inert:

* ``code_span(value)``: the value as an inline code span, the one Markdown construct whose
  content is never parsed; its fence is longer than any run of backticks inside, so a
  backtick cannot close the span early;
* ``plotly_text(value)``: ``&``, ``<`` and ``>`` as HTML entities, which plotly draws as
  the characters themselves.

Text that stands alone (an instance's text) is shown with ``st.text``, which renders
nothing; tables (``st.dataframe``) show cells as text.
"""

from __future__ import annotations

import html
import re
from typing import Any

import numpy as np
import pandas as pd

_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029]+")
_BACKTICKS = re.compile(r"`+")


def code_span(value: Any) -> str:
    """``value`` as a Markdown inline code span, shown literally whatever it holds (line
    breaks as spaces).

    The fence is one backtick longer than the longest run of backticks in the value. A
    value that starts or ends with a backtick or a space is padded with a space on each
    side, which CommonMark strips again, so the value stays intact. A value of spaces only
    is returned as it is (there is nothing to render)."""
    text = _LINE_BREAK.sub(" ", str(value))
    if not text.strip():
        return text
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def plotly_text(value: Any) -> str:
    """``value`` for a plotly title, tick label, text or hover field: its markup shown as
    characters (``<b>`` reads ``<b>``, not bold)."""
    return html.escape(str(value), quote=False)


def plotly_texts(values: Any) -> np.ndarray:
    """``plotly_text`` of each of ``values`` (a sequence or a pandas Series), as an object
    array; one vectorised pass, and none at all when no value holds ``&``, ``<`` or ``>``."""
    series = pd.Series(values, copy=False)
    if series.isna().any():  # str() of a missing value is its own spelling: one at a time
        return np.array([plotly_text(v) for v in series], dtype=object)
    series = series.astype(str)
    if series.str.contains(r"[&<>]", regex=True).any():
        series = (series.str.replace("&", "&amp;", regex=False)
                  .str.replace("<", "&lt;", regex=False).str.replace(">", "&gt;", regex=False))
    return series.to_numpy(dtype=object)
