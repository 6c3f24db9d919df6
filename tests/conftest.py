"""Shared fixtures. Tests that need ../shared/data skip with a reason when it is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEEDLAB_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def store(tmp_path):
    """An empty store in a temporary home."""
    from seedlab.store import Store

    return Store(tmp_path / "home")


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is missing (../shared/data is not beside"
                    " the checkout)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _apps_route_through_navigation():
    """AppTest resets Streamlit's legacy ``pages/`` flag before every run, so without this
    each AppTest run would look like a fresh server's first run (which ``ensure_frame``
    answers with a rerun that drops a clicked button's event). The real server takes that
    path once per process; tests/test_browser.py covers it with direct links."""
    from app_support import navigation_only

    navigation_only()
