"""The view state of the dashboard, kept in the URL query parameters.

Everything a user chooses (dataset home, task, sizes, seeds, checkpoint, and each page's
own widgets under a namespaced name such as ``agreement.metric``) is written to
``st.query_params`` on every run, so a copied link reopens exactly the same view. A copy
is also kept in ``st.session_state`` because switching pages may clear the query string;
the next run writes it back.

Pages use :func:`current` for the shared selection and :func:`url_param` /
:func:`set_url_param` (or the ``url_*`` widget helpers, which do both) for their own state.
The sidebar that makes the selection is ``seedlab.ui.sidebar`` (only ``app.py`` calls it);
this module reads no data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st

from seedlab.store import default_home
from seedlab.ui.tables import checkpoint_text

# Query parameter names of the shared selection.
HOME, TASK, SIZES, PRETRAIN, FINETUNE, CHECKPOINT = (
    "home", "task", "sizes", "pretrain_seeds", "finetune_seeds", "checkpoint",
)
_SHADOW = "_seedlab_url_state"  # name -> value, survives page switches
_SELECTION = "_seedlab_selection"
_LINK = "_seedlab_link"  # (draw, url drawn) of this run's copy-link slot
_NOTES = "_seedlab_ignored"  # (draw, notes) of this run: what of the URL was ignored
SHARED = (HOME, TASK, SIZES, PRETRAIN, FINETUNE, CHECKPOINT)
# Streamlit's own parameters (embedding), which the app never reads.
STREAMLIT_PARAMS = ("embed", "embed_options")
MAX_TEXT = 256  # characters of a text value taken from the URL


@dataclass
class Selection:
    """What the sidebar selects, shared by every page.

    ``checkpoint`` is ``'last'`` (each run's last checkpoint) or a checkpoint value as text.
    Lists are empty when the task has no runs.
    """

    home: Path
    task: str | None
    sizes: list[str] = field(default_factory=list)
    pretrain_seeds: list[str] = field(default_factory=list)
    finetune_seeds: list[int] = field(default_factory=list)
    checkpoint: str = "last"
    all_sizes: list[str] = field(default_factory=list)
    all_pretrain_seeds: list[str] = field(default_factory=list)
    all_finetune_seeds: list[int] = field(default_factory=list)
    checkpoints: list[float] = field(default_factory=list)

    @property
    def checkpoint_arg(self) -> str | float:
        """The checkpoint as ``Store.arrays`` takes it: ``'last'`` or a number."""
        return "last" if self.checkpoint == "last" else float(self.checkpoint)

    def describe(self, sizes: Sequence[str] | None = None) -> str:
        """Short text naming the data, for captions: task, sizes, seeds, checkpoint."""
        sizes = list(sizes) if sizes is not None else self.sizes
        ckpt = ("last checkpoint" if self.checkpoint == "last"
                else f"checkpoint {checkpoint_text(self.checkpoint)}")
        return (
            f"{self.task} · sizes {', '.join(sizes) or '-'} · pretraining seeds "
            f"{_seed_text(self.pretrain_seeds)} · fine-tuning seeds "
            f"{_seed_text(self.finetune_seeds)} · {ckpt}"
        )


def _seed_text(seeds: Sequence[Any]) -> str:
    seeds = [str(s) for s in seeds]
    if len(seeds) > 6:
        return f"{seeds[0]}..{seeds[-1]} ({len(seeds)})"
    return ", ".join(seeds) or "-"


# ---------------------------------------------------------------------------------------
# URL parameters


def _shadow() -> dict[str, Any]:
    if _SHADOW not in st.session_state:
        st.session_state[_SHADOW] = {}
    return st.session_state[_SHADOW]


def _parse(raw: list[str], kind: Any) -> Any:
    """Turn the query-string values of one name into a value of ``kind``; ValueError when
    they do not make one (numbers must be finite)."""
    try:
        return _parse_values(raw, kind)
    except (TypeError, OverflowError, RecursionError) as error:
        raise ValueError(str(error)) from None


def _parse_values(raw: list[str], kind: Any) -> Any:
    if kind is list or kind == list[str]:
        return [str(v) for v in raw]
    if kind == list[int]:
        return [int(v) for v in raw]
    if kind == list[float]:
        return [_finite(float(v)) for v in raw]
    if not raw:
        raise ValueError("empty")
    text = raw[-1]
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if kind is dict:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value
    if kind is float:
        return _finite(float(text))
    return kind(text)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    return value


def _format(value: Any) -> str | list[str]:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def url_param(name: str, default: Any, kind: Any = str) -> Any:
    """The value of ``name`` from the URL, else from this session, else ``default``.

    ``kind`` is ``str``, ``int``, ``float``, ``bool``, ``dict`` (JSON), or ``list`` /
    ``list[str]`` / ``list[int]`` / ``list[float]`` (a repeated parameter). A value that
    does not parse falls back to the default. The value is written back to the URL.
    """
    value = default
    if name in st.query_params:
        raw = st.query_params.get_all(name)
        try:
            value = _parse(raw, kind)
        except ValueError:
            value = default
            note_ignored(name, raw, f"not {_KIND_TEXT.get(kind, 'a valid value')}; using"
                                    f" {_short(default)}")
    elif name in _shadow():
        value = _shadow()[name]
    set_url_param(name, value)
    return value


_KIND_TEXT = {int: "a whole number", float: "a finite number", bool: "true or false",
              dict: "a JSON object", list[int]: "whole numbers", list[float]: "numbers"}


def set_url_param(name: str, value: Any) -> None:
    """Write ``name`` to the URL (and this session's copy); ``None`` removes it."""
    shadow = _shadow()
    if value is None:
        shadow.pop(name, None)
        if name in st.query_params:
            del st.query_params[name]
            _refresh_link()
        return
    shadow[name] = value
    formatted = _format(value)
    current = st.query_params.get_all(name)
    wanted = formatted if isinstance(formatted, list) else [formatted]
    if current != wanted:
        st.query_params[name] = formatted
        _refresh_link()


def restore_url() -> None:
    """Write this session's view state back to the URL (after a page switch cleared it)."""
    for name, value in list(_shadow().items()):
        if name not in st.query_params:
            set_url_param(name, value)


def share_url() -> str:
    """The full link of the current view: the page's address plus the query string."""
    base = ""
    try:
        base = st.context.url or ""
    except Exception:  # noqa: BLE001 - no browser context (tests, bare runs)
        base = ""
    query = urlencode({k: st.query_params.get_all(k) for k in st.query_params}, doseq=True)
    if not base:
        return "?" + query
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def show_link(draw: Callable[[str], None]) -> None:
    """Show the link of the view with ``draw(url)`` now, and again each time this run
    changes the URL, so that it always holds the view on screen: the page's own controls
    write their state after the sidebar has drawn the link, and a page may end its run
    early (``st.stop``), after which nothing more can be drawn. ``draw`` fills one
    placeholder (``seedlab.ui.sidebar``). Called once per run; :func:`end_run` closes it."""
    url = share_url()
    st.session_state[_LINK] = (draw, url)
    draw(url)


def _refresh_link() -> None:
    entry = st.session_state.get(_LINK)
    if entry is None or _in_fragment_rerun():
        return
    draw, shown = entry
    url = share_url()
    if url != shown:
        st.session_state[_LINK] = (draw, url)
        draw(url)


def _in_fragment_rerun() -> bool:
    """Whether this run reruns fragments only (the sidebar's placeholder is not part of it)."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def show_notes(draw: Callable[[list[str]], None], view: str = "") -> None:
    """Show what was ignored from the URL (values that do not parse or are not available,
    unknown names, a home that is not a store) with ``draw(notes)``, now and with each new
    note. The notes last while the session stays on ``view`` (the page), so a rerun does
    not hide them. Called once per run (``seedlab.ui.sidebar``)."""
    previous = st.session_state.get(_NOTES)
    notes = previous[1] if previous is not None and previous[2] == view else {}
    st.session_state[_NOTES] = (draw, notes, view)
    if notes:
        draw(list(notes.values()))


def note_ignored(name: str, raw: Any, why: str) -> None:
    """Record (and show) that the URL's ``name`` = ``raw`` was ignored, and ``why``."""
    entry = st.session_state.get(_NOTES)
    if entry is None or _in_fragment_rerun():
        return
    draw, notes, _view = entry
    if name not in notes:  # the first reason given for a name is the one shown
        notes[name] = f"{name} = {_short(raw)}: {why}."
        draw(list(notes.values()))


def ignored_notes() -> list[str]:
    """What this run ignored from the URL, one sentence each (tests, the sidebar)."""
    entry = st.session_state.get(_NOTES)
    return list(entry[1].values()) if entry else []


def drop_unknown_params(pages: Sequence[str]) -> None:
    """Remove the URL's parameters no part of the app reads (names other than the shared
    selection's and ``<page>.<name>`` for the app's ``pages``), saying so."""
    prefixes = tuple(f"{page}." for page in pages)
    for name in list(st.query_params):
        if name in SHARED or name in STREAMLIT_PARAMS or name.startswith(prefixes):
            continue
        note_ignored(_short(name, 40), st.query_params.get_all(name), "not a setting of this app")
        del st.query_params[name]
        _shadow().pop(name, None)


def _short(value: Any, limit: int = 80) -> str:
    """``value`` as a short line of text: lists joined, long text cut (with its length),
    control characters shown escaped."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    text = str(value)
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text[:limit])
    length = len(str(value))
    return text if length <= limit else f"{text}... ({length} characters)"


def end_run() -> None:
    """Bring the link up to date with the view at the end of a full run (``app.py`` calls
    it after the page has run) and forget this run's placeholder."""
    _refresh_link()
    if not _in_fragment_rerun():
        st.session_state.pop(_LINK, None)


# ---------------------------------------------------------------------------------------
# Widgets bound to URL parameters. Each takes the URL name, creates the widget with
# ``key=name`` and keeps the URL in step with it.


def _changed_outside(name: str, kind: Any) -> bool:
    """Whether the URL holds a value for ``name`` that this session did not write (the user
    edited the address or went back in history): then the URL wins over the widget."""
    if name not in st.query_params or name not in _shadow():
        return False
    try:
        return _parse(st.query_params.get_all(name), kind) != _shadow()[name]
    except ValueError:
        return False


def _from_outside(name: str, kind: Any) -> bool:
    """Whether the URL's value of ``name`` came from outside this session (a link, an
    edited address) rather than from this session's own writes."""
    if name not in st.query_params:
        return False
    if name not in _shadow():
        return True
    try:
        return _parse(st.query_params.get_all(name), kind) != _shadow()[name]
    except ValueError:
        return True


def _bind(name: str, default: Any, kind: Any, valid: Callable[[Any], Any] | None = None) -> str:
    """Put the widget ``name``'s value in ``st.session_state[name]`` before it is drawn:
    the session's value, or the URL's when it came from outside (then a value ``valid``
    changes is noted as ignored). ``valid`` maps any value to an allowed one."""
    key = name
    outside = False
    if key in st.session_state and not _changed_outside(name, kind):
        value = st.session_state[key]
    else:
        outside = _from_outside(name, kind)
        value = url_param(name, default, kind)
    if valid is not None:
        try:
            checked = valid(value)
        except (TypeError, ValueError, OverflowError):
            checked = valid(default)
        if outside and checked != value:
            note_ignored(name, st.query_params.get_all(name),
                         f"not one of the choices here; using {_short(checked)}")
        value = checked
    st.session_state[key] = value
    return key


def _url_choice(widget: Any, label: str, options: Sequence[Any], name: str, default: Any,
                kind: Any, **kwargs: Any) -> Any:
    """A one-of-many widget (``st.selectbox``, ``st.radio``) whose value lives in the URL."""
    options = list(options)
    if not options:
        return None
    fallback = default if default in options else options[0]
    key = _bind(name, fallback, kind, lambda v: v if v in options else fallback)
    value = widget(label, options, key=key, **kwargs)
    set_url_param(name, value)
    return value


def url_selectbox(label: str, options: Sequence[Any], name: str, default: Any = None,
                  kind: Any = str, **kwargs: Any) -> Any:
    """``st.selectbox`` whose value lives in the URL under ``name``."""
    return _url_choice(st.selectbox, label, options, name, default, kind, **kwargs)


def url_radio(label: str, options: Sequence[Any], name: str, default: Any = None,
              kind: Any = str, **kwargs: Any) -> Any:
    """``st.radio`` whose value lives in the URL under ``name``."""
    return _url_choice(st.radio, label, options, name, default, kind, **kwargs)


def url_multiselect(label: str, options: Sequence[Any], name: str,
                    default: Sequence[Any] | None = None, kind: Any = list,
                    **kwargs: Any) -> list[Any]:
    """``st.multiselect`` whose value lives in the URL under ``name`` (repeated)."""
    options = list(options)
    fallback = [v for v in (default if default is not None else options) if v in options]

    def valid(values: Any) -> list[Any]:
        kept = [v for v in (values or []) if v in options]
        return kept if kept or not values else fallback

    key = _bind(name, fallback, kind, valid)
    value = st.multiselect(label, options, key=key, **kwargs)
    set_url_param(name, list(value))
    return list(value)


def url_toggle(label: str, name: str, default: bool = False, **kwargs: Any) -> bool:
    """``st.toggle`` whose value lives in the URL under ``name``."""
    key = _bind(name, default, bool, lambda v: bool(v))
    value = st.toggle(label, key=key, **kwargs)
    set_url_param(name, bool(value))
    return bool(value)


def url_number(label: str, name: str, default: float, kind: Any = int,
               min_value: float | None = None, max_value: float | None = None,
               **kwargs: Any) -> Any:
    """``st.number_input`` whose value lives in the URL under ``name``."""

    def valid(v: Any) -> Any:
        v = kind(_finite(float(v)))
        if min_value is not None and v < min_value:
            v = kind(min_value)
        if max_value is not None and v > max_value:
            v = kind(max_value)
        return v

    key = _bind(name, default, kind, valid)
    value = st.number_input(label, min_value=min_value, max_value=max_value, key=key, **kwargs)
    set_url_param(name, value)
    return value


def url_slider(label: str, name: str, default: Any, kind: Any = float,
               min_value: Any = None, max_value: Any = None, **kwargs: Any) -> Any:
    """``st.slider`` whose value lives in the URL under ``name`` (one value)."""

    def valid(v: Any) -> Any:
        v = kind(_finite(float(v)))
        if min_value is not None:
            v = max(v, kind(min_value))
        if max_value is not None:
            v = min(v, kind(max_value))
        return v

    key = _bind(name, default, kind, valid)
    value = st.slider(label, min_value=min_value, max_value=max_value, key=key, **kwargs)
    set_url_param(name, value)
    return value


def url_text(label: str, name: str, default: str = "",
             valid: Callable[[str], str] | None = None, max_chars: int = MAX_TEXT,
             **kwargs: Any) -> str:
    """``st.text_input`` whose value lives in the URL under ``name``. A value longer than
    ``max_chars`` is refused (the default instead); ``valid`` maps a value to an allowed
    one (the default for one it refuses)."""

    def checked(value: Any) -> str:
        text = str(value)
        if len(text) > max_chars:
            note_ignored(name, text, f"longer than {max_chars} characters; using"
                                     f" {_short(default)}")
            return default
        return valid(text) if valid is not None else text

    key = _bind(name, default, str, checked)
    value = st.text_input(label, key=key, **kwargs)
    set_url_param(name, value)
    return value


# ---------------------------------------------------------------------------------------
# The shared selection (drawn by seedlab.ui.sidebar)


def set_current(selection: Selection) -> None:
    """Record the selection the sidebar made in this run (``seedlab.ui.sidebar``)."""
    st.session_state[_SELECTION] = selection


def current() -> Selection:
    """The selection the sidebar made in this run (pages call this)."""
    selection = st.session_state.get(_SELECTION)
    if selection is None:
        return Selection(home=default_home(), task=None)
    return selection
