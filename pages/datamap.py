"""datamap page (being built)."""

import streamlit as st

st.title("datamap")
st.info("This page is being built.")
