"""bias_variance page (being built)."""

import streamlit as st

st.title("bias_variance")
st.info("This page is being built.")
