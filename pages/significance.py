"""significance page (being built)."""

import streamlit as st

st.title("significance")
st.info("This page is being built.")
