"""seedlab dashboard: `streamlit run app.py`. Router and frame only.

The sidebar (seedlab.ui.sidebar) picks the dataset, task, sizes, seeds and
checkpoint for every page; the whole view lives in the URL query parameters.
"""

from pathlib import Path

import streamlit as st

from seedlab.demo import default_task
from seedlab.ui.frame import ensure_frame
from seedlab.ui.sidebar import sidebar
from seedlab.ui.state import end_run

ensure_frame()

st.set_page_config(layout="wide", page_title="seedlab")

HERE = Path(__file__).resolve().parent
# (file, title, url_path, icon). Each url_path is its file's stem, so that the legacy
# router of a fresh server finds the same page (see seedlab/ui/frame.py).
PAGES = [
    ("pages/overview.py", "Overview", "overview", ":material/dashboard:"),
    ("pages/bias_variance.py", "Bias and variance", "bias_variance",
     ":material/stacked_bar_chart:"),
    ("pages/agreement.py", "Agreement", "agreement", ":material/grid_on:"),
    ("pages/decaying.py", "Decaying instances", "decaying", ":material/trending_down:"),
    ("pages/annotate.py", "Annotate", "annotate", ":material/rate_review:"),
    ("pages/masks.py", "Pruning masks", "masks", ":material/content_cut:"),
    ("pages/significance.py", "Significance", "significance", ":material/functions:"),
    ("pages/datamap.py", "Seed data map", "datamap", ":material/scatter_plot:"),
    ("pages/runs.py", "Runs", "runs", ":material/play_circle:"),
    ("pages/report.py", "Report", "report", ":material/description:"),
]

page = st.navigation(
    [
        st.Page(file, title=title, url_path=url_path, icon=icon, default=(url_path == "overview"))
        for file, title, url_path, icon in PAGES
        if (HERE / file).exists()
    ]
)
# Opens on the default study (seedlab demo) where the home has one; the URL may hold each
# page's own parameters (<url_path>.<name>).
sidebar(default_task, pages=[url_path for _file, _title, url_path, _icon in PAGES],
        page=page.url_path)
page.run()
end_run()  # the copy link as the page left the URL (it follows each change during the run)
