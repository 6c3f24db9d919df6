"""Streamlit support for the dashboard: view state in the URL (``state``), cached store
and stats access (``data``), and figure display with export and pinning (``figure``)."""
