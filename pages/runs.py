"""Runs: start background fine-tuning runs and watch them (placeholder, being built)."""

import streamlit as st

st.title("Runs")
st.markdown(
    "Start fine-tuning runs on local GPUs (or the CPU) from here: a grid form over sizes x"
    " pretraining seeds x fine-tuning seeds, a live queue with progress, logs and metrics per"
    " run, cancel and retry. Finished runs' predictions appear in every analysis page.\n\n"
    "This page is being built; meanwhile use `seedlab runs submit --spec FILE.json` and"
    " `seedlab worker`."
)
