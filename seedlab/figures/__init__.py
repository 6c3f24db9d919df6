"""Plotly figure builders: data in, ``go.Figure`` out. No Streamlit, no queries.

One module per page (``overview``, ``bias_variance``, ``agreement``, ``decaying``,
``significance``, ``datamap``, ``masks``, ``annotate``) plus ``common`` (shared styling)
and ``report`` (the self-contained HTML export).
"""
