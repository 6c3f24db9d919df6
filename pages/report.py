"""Report: what was pinned from any page (figures, tables, sentences), kept in the home by
name, exported as one offline HTML file."""

import streamlit as st

from seedlab.figures.report import report_html
from seedlab.reports import ReportError
from seedlab.ui.figure import literal, report_store
from seedlab.ui.frame import ensure_frame
from seedlab.ui.tables import show_table

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Report")
try:
    store = report_store()
    names = store.names()
    if st.session_state.get("report.current") not in names:  # renamed or deleted elsewhere
        st.session_state.pop("report.current", None)
    # The report this run shows: the one just picked below, else the home's current one.
    chosen = (st.session_state.get("report.current") or store.current()
              or (names[0] if names else None))
except (ReportError, OSError) as exc:
    st.info(f"No report here: {literal(exc)}")
    st.stop()


def act(action, *args) -> bool:
    """Run a report-store action; show its error instead of a traceback."""
    try:
        action(*args)
    except (ReportError, OSError) as exc:
        st.error(literal(exc))
        return False
    return True


with st.expander("Reports in this home", expanded=not names):
    st.caption(f"Kept in {literal(store.root)}, so they survive reloads and restarts. Pins"
               " go to the current report.")
    new, make = st.columns([4, 1], vertical_alignment="bottom")
    new_name = new.text_input("New report", key="report.new_name", placeholder="e.g. group meeting")
    if (make.button("Create", key="report.create", disabled=not new_name.strip())
            and act(store.create, new_name.strip()) and act(store.set_current, new_name.strip())):
        st.session_state["report.current"] = new_name.strip()
        st.rerun()
    if chosen is not None:
        renamed, do_rename = st.columns([4, 1], vertical_alignment="bottom")
        rename_to = renamed.text_input(f"Rename {chosen!r} to", key="report.rename_to")
        if (do_rename.button("Rename", key="report.rename", disabled=not rename_to.strip())
                and act(store.rename, chosen, rename_to.strip())):
            st.session_state["report.current"] = rename_to.strip()
            st.rerun()
        sure, do_delete = st.columns([4, 1], vertical_alignment="bottom")
        confirm = sure.checkbox(f"Delete {chosen!r} and everything pinned to it",
                                key="report.delete_confirm")
        if do_delete.button("Delete", key="report.delete", disabled=not confirm,
                            icon=":material/delete:") and act(store.delete, chosen):
            st.session_state.pop("report.current", None)
            st.rerun()

if not names:
    st.info("No figures pinned yet. Use **Pin to report** under any figure (or beside a"
            " table or a summary sentence); pinned items collect here, in order, with their"
            " captions, kept in this home, for export as one HTML file.")
    st.stop()

picked = st.selectbox("Current report (pins go here)", names, index=names.index(chosen),
                      key="report.current")
if picked != store.current():
    act(store.set_current, picked)
try:
    info = store.info(picked)
    items = store.items(picked)
except (ReportError, OSError) as exc:
    st.error(f"Report {picked!r} cannot be read: {literal(exc)}")
    st.stop()

title = st.text_input("Report title", value=info.title, key=f"report.title.{picked}")
if title != info.title:
    act(store.set_title, picked, title)

if not items:
    st.info(f"No figures pinned yet to {picked!r}. Use **Pin to report** under any figure;"
            " pinned items collect here, in order, with their captions.")
    st.stop()

st.download_button("Download report (HTML, opens offline)",
                   report_html(items, title).encode("utf-8"),
                   file_name=f"seedlab-{picked.replace(' ', '-')}.html", mime="text/html",
                   icon=":material/download:", type="primary", key="report.download")
st.caption(f"{len(items)} item(s). plotly.js is inlined once, so the file needs no network.")

for index, item in enumerate(items):
    st.divider()
    head, up, down, remove = st.columns([6, 1.2, 1.4, 1.6])
    kind = {"figure": "Figure", "table": "Table", "text": "Note"}.get(item.kind, "Item")
    # Titles and pages hold data names: shown as text, never as Markdown.
    head.text(f"{index + 1}. {item.title or kind} · {kind.lower()} from {item.page} · {item.at}")
    if up.button("Up", key=f"report.up.{index}", disabled=index == 0,
                 icon=":material/arrow_upward:") and act(store.move, picked, item.id, -1):
        st.rerun()
    if down.button("Down", key=f"report.down.{index}", disabled=index == len(items) - 1,
                   icon=":material/arrow_downward:") and act(store.move, picked, item.id, 1):
        st.rerun()
    if (remove.button("Remove", key=f"report.remove.{index}", icon=":material/delete:")
            and act(store.remove, picked, item.id)):
        st.rerun()
    if item.kind == "figure":
        # The figure's subtitle is its caption: not repeated under it.
        st.plotly_chart(item.figure(), key=f"report.figure.{index}",
                        config={"displaylogo": False})
    elif item.kind == "table":
        show_table(item.table, key=f"report.table.{index}")
        if item.caption:
            st.text(item.caption)
    else:
        st.text(item.text)
        if item.caption:
            st.text(item.caption)
