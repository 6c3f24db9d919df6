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


def route_app_tests_through_navigation() -> None:
    """Make ``streamlit.testing.v1.AppTest`` route like a warm server (tests, benchmarks).

    AppTest resets Streamlit's legacy ``pages/`` flag before every run, so every AppTest run
    would look like a fresh server's first run and ``ensure_frame`` would rerun it, dropping
    a clicked button's event. The real server takes that path once per process (the browser
    test covers it). Idempotent.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "_seedlab_navigation_only", False):
        return
    original = PagesManager.__init__

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = __init__  # type: ignore[method-assign]
    PagesManager._seedlab_navigation_only = True  # type: ignore[attr-defined]
