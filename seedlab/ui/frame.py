"""Keep every page inside the app's frame (``st.navigation`` in ``app.py``).

Streamlit decides once per server process whether an app uses the legacy ``pages/``
folder, and it decides before ``app.py`` has run: the very first script run of a fresh
server therefore goes through the legacy router, which runs a page file on its own (no
sidebar, no selection) when the first URL names a page. ``ensure_frame()``, called first
in ``app.py`` and in every page, switches the process to ``st.navigation`` routing and
reruns, so a copied link opened on a freshly started server shows the same view as on a
warm one.
"""

from __future__ import annotations

import streamlit as st


def ensure_frame() -> None:
    """Rerun through ``app.py``'s navigation if this run came through the legacy router."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
