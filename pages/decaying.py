"""decaying page (being built)."""

import streamlit as st

st.title("decaying")
st.info("This page is being built.")
