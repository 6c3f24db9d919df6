"""The shared sidebar: dataset, task, sizes, seeds, checkpoint and the copy-link popover.

Only ``app.py`` calls :func:`sidebar`, once per run; pages read what it selected with
``seedlab.ui.state.current()``. It reads the store through ``seedlab.ui.data`` and keeps
every choice in the URL through ``seedlab.ui.state``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import streamlit as st

from seedlab.analyses.query import missing_runs_advice
from seedlab.demo import MANIFEST
from seedlab.schema import canonical_task
from seedlab.store import Store
from seedlab.ui import data
from seedlab.ui.state import (
    CHECKPOINT,
    FINETUNE,
    HOME,
    PRETRAIN,
    SIZES,
    TASK,
    Selection,
    default_home,
    drop_unknown_params,
    note_ignored,
    restore_url,
    set_current,
    show_link,
    show_notes,
    url_multiselect,
    url_selectbox,
    url_text,
)

# (home, task names) -> the task to open on, or None for the first.
DefaultTask = Callable[[Path, list[str]], "str | None"]


def sidebar(default_task: DefaultTask | None = None, pages: Sequence[str] = (),
            page: str = "") -> Selection:
    """Draw the shared sidebar (dataset, task, sizes, seeds, checkpoint, copy link, simulated
    banner) and return the selection. Called by ``app.py`` only, once per run.
    ``default_task(home, tasks)`` names the task to open on (``app.py`` passes the default
    study's, ``seedlab.demo.default_task``); else the first task. ``pages``: the url paths
    of the app's pages, whose ``<page>.<name>`` parameters the URL may hold; any other name
    is dropped with a note; ``page``: the one shown in this run.

    What the URL asks for and the app cannot show (a home that is not a seedlab store, an
    unknown task, seeds or sizes the task lacks, values that do not parse) falls back to
    the default, and a warning at the top of the page says what was ignored."""
    restore_url()
    notes = st.empty()
    show_notes(lambda lines: _show_ignored(notes, lines), page)
    drop_unknown_params(pages)
    with st.sidebar:
        st.markdown("### Data")
        home = Path(url_text(
            "Dataset (seedlab home)", HOME, str(default_home()), valid=_openable,
            max_chars=data.MAX_HOME_CHARS,
            help="A folder holding a seedlab store (`seedlab import` writes one). Defaults to"
                 " $SEEDLAB_HOME, else home/: your own copy of the shipped study in data/,"
                 " where your runs and imports go.")).expanduser()
        selection = Selection(home=home, task=None)
        if not Store.is_home(home):
            st.warning(f"No seedlab store at `{home}`. Import data with `seedlab import ...`"
                       " or choose another folder.")
            set_current(selection)
            _copy_link()
            return selection
        ds = data.open_data(home)
        tasks = ds.tasks()
        if tasks.empty:
            st.info("This store holds no tasks yet. Import data with `seedlab import ...`.")
            set_current(selection)
            _copy_link()
            return selection
        task_names = tasks["task"].tolist()
        _canonical_task_in_url(task_names)
        first = (default_task(home, task_names) if default_task else None) or task_names[0]
        task = url_selectbox("Task", task_names, TASK, first)
        keys = ds.task_keys(task)
        sizes, p_all = list(keys.sizes), list(keys.pretrain_seeds)
        f_all, ckpts = list(keys.finetune_seeds), list(keys.checkpoints)
        selection = Selection(home=home, task=task, all_sizes=sizes, all_pretrain_seeds=p_all,
                              all_finetune_seeds=f_all, checkpoints=ckpts)
        if not sizes:
            st.info(f"Task {task} has no runs yet.")
        else:
            # Open on what is complete: the published study, or the sizes with every run
            # of the seeds (a user's one-run test of a new size stays out until chosen).
            grid = ds.default_grid(task, _study(home, task))
            selection.sizes = url_multiselect("Sizes", sizes, SIZES, list(grid.sizes))
            selection.pretrain_seeds = url_multiselect("Pretraining seeds", p_all, PRETRAIN,
                                                       list(grid.pretrain_seeds))
            selection.finetune_seeds = url_multiselect("Fine-tuning seeds", f_all, FINETUNE,
                                                       list(grid.finetune_seeds),
                                                       kind=list[int])
            _warn_incomplete(keys.have, selection)
            ckpt_options = ["last"] + [_ckpt_text(c) for c in ckpts]
            selection.checkpoint = url_selectbox(
                "Checkpoint", ckpt_options, CHECKPOINT, "last",
                help="'last' takes each run's last checkpoint.")
        _copy_link()
    row = tasks.set_index("task").loc[task]
    if bool(row["simulated"]):
        description = str(row.get("description") or "").strip()
        st.warning("**Simulated data.** The predictions of task "
                   f"`{task}` were generated, not produced by trained models. {description}",
                   icon=":material/science:")
    elif str(row.get("description") or "").strip():
        st.info(str(row["description"]).strip(), icon=":material/info:")
    set_current(selection)
    return selection


def _study(home: Path, task: str) -> dict | None:
    """The manifest of the study published in ``home`` (``seedlab demo``) when it is of
    ``task``, else None."""
    try:
        manifest = json.loads((home / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("task") == task else None


def _warn_incomplete(have: frozenset[tuple[str, str, int]], selection: Selection) -> None:
    """Name what to deselect when a selected size lacks runs of the selected seeds (the
    pages that need every run, such as Bias and variance, stop on it). ``have``: the
    (size, pretraining seed, fine-tuning seed) of every run of the task."""
    for size in selection.sizes:
        missing = [(p, f) for p in selection.pretrain_seeds for f in selection.finetune_seeds
                   if (size, p, f) not in have]
        if missing:
            advice = missing_runs_advice(size, selection.pretrain_seeds,
                                         selection.finetune_seeds, missing)
            st.warning(advice[0].upper() + advice[1:] + " The analyses that need every selected"
                       " run leave the size out or stop.", icon=":material/grid_off:")


def _openable(text: str) -> str:
    """``text`` when it names a home the app may open (``data.openable_home``) or is the
    default home; else the default home, noting why ``text`` was ignored."""
    default = str(default_home())
    if text == default:
        return text
    _home, why = data.openable_home(text)
    if why:
        note_ignored(HOME, text, f"{why}; opened {default} instead")
        return default
    return text


def _canonical_task_in_url(task_names: list[str]) -> None:
    """A task the URL names by an alias (``mnli``, ``sst2``) opens the task stored under
    its canonical name (``MNLI``, ``SST-2``; ``seedlab.schema.canonical_task``)."""
    asked = st.query_params.get(TASK)
    if asked is None or asked in task_names:
        return
    canonical = canonical_task(asked)
    if canonical in task_names:
        st.query_params[TASK] = canonical


def _show_ignored(slot, notes: list[str]) -> None:
    """The warning listing what was ignored from the link, as plain text."""
    lines = "\n".join(f"- {_plain(note)}" for note in notes)
    slot.warning(f"**Parts of this link were ignored**, the defaults shown instead:\n{lines}",
                 icon=":material/link_off:")


def _plain(text: str) -> str:
    """``text`` with every Markdown/HTML character escaped, so it shows as written."""
    return "".join(f"\\{c}" if c in _MARKDOWN_CHARS else c for c in text)


_MARKDOWN_CHARS = set("\\`*_{}[]()#+-.!|<>~$&:=\"'")


def _ckpt_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _copy_link() -> None:
    """The copy-link popover, in a placeholder that ``seedlab.ui.state.show_link`` fills
    again whenever the page's own controls change the URL later in the run."""
    slot = st.empty()

    def draw(url: str) -> None:
        with slot.container(), st.popover("Copy link", icon=":material/link:",
                                          width="stretch"):
            st.caption("This link reopens exactly this view: dataset, task, sizes, seeds,"
                       " checkpoint, page and the page's own settings. Copy it with the icon.")
            st.code(url, language=None, wrap_lines=True)

    show_link(draw)
