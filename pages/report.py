"""Report: the figures pinned from any page, in order, exported as one offline HTML file."""

import streamlit as st

from seedlab.figures.report import report_html
from seedlab.ui.figure import report_items
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import url_text

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Report")
items = report_items()
if not items:
    st.info("No figures pinned yet. Use **Pin to report** under any figure; pinned figures"
            " collect here, in order, with their captions, for export as one HTML file.")
    st.stop()

title = url_text("Report title", "report.title", "seedlab report")
st.download_button("Download report (HTML, opens offline)",
                   report_html(items, title).encode("utf-8"),
                   file_name="seedlab-report.html", mime="text/html",
                   icon=":material/download:", type="primary", key="report.download")
st.caption(f"{len(items)} figure(s). plotly.js is inlined once, so the file needs no network.")

for index, item in enumerate(list(items)):
    st.divider()
    head, up, down, remove = st.columns([6, 1.2, 1.4, 1.6])
    head.markdown(f"**{index + 1}. {item.title or 'Figure'}** · from {item.page} · {item.at}")
    if up.button("Up", key=f"report.up.{index}", disabled=index == 0,
                 icon=":material/arrow_upward:"):
        items[index - 1], items[index] = items[index], items[index - 1]
        st.rerun()
    if down.button("Down", key=f"report.down.{index}", disabled=index == len(items) - 1,
                   icon=":material/arrow_downward:"):
        items[index + 1], items[index] = items[index], items[index + 1]
        st.rerun()
    if remove.button("Remove", key=f"report.remove.{index}", icon=":material/delete:"):
        items.pop(index)
        st.rerun()
    st.plotly_chart(item.figure(), key=f"report.figure.{index}",
                    config={"displaylogo": False})
    st.caption(item.caption)
