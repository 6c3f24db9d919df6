"""Significance: the Multi-Bootstrap (Sellam et al. 2021) between two configurations."""

import streamlit as st

from seedlab.analyses import NotEnoughData, SignificanceQuery
from seedlab.analyses.significance import NESTED_NOTE
from seedlab.figures.significance import bootstrap_figure, reading
from seedlab.ui import data
from seedlab.ui.figure import pin_text_button, show_figure
from seedlab.ui.frame import ensure_frame
from seedlab.ui.state import url_number, url_radio, url_selectbox, url_text, url_toggle
from seedlab.ui.tables import checkpoint_text, p_value_text, show_table

ensure_frame()  # a fresh server's first run may bypass app.py

st.title("Significance: Multi-Bootstrap")
sel, ds = data.selected_data(
    "No runs to compare. Choose a seedlab home and a task with runs in the sidebar.")
ckpt_options = ["last"] + [f"{c:g}" for c in sel.checkpoints]
if len(sel.sizes) < 2 and len(ckpt_options) < 3:
    st.info("The Multi-Bootstrap compares two configurations (two sizes or two checkpoints);"
            f" task {sel.task} has one size and one checkpoint in this selection.")
    st.stop()

st.markdown("Pick a **baseline** and a **treatment** configuration: a size and a checkpoint"
            " each (the sidebar's seeds apply to both).")
c1, c2 = st.columns(2)
with c1:
    st.markdown("**Baseline**")
    base_size = url_selectbox("Baseline size", sel.sizes, "significance.base_size",
                              sel.sizes[0])
    base_ckpt = url_selectbox("Baseline checkpoint", ckpt_options, "significance.base_ckpt",
                              "last", format_func=checkpoint_text)
with c2:
    st.markdown("**Treatment**")
    expt_size = url_selectbox("Treatment size", sel.sizes, "significance.expt_size",
                              sel.sizes[-1])
    expt_ckpt = url_selectbox("Treatment checkpoint", ckpt_options, "significance.expt_ckpt",
                              "last", format_func=checkpoint_text)

with st.expander("Bootstrap options", expanded=False):
    o1, o2, o3 = st.columns(3)
    with o1:
        design = url_radio("Design", ["paired", "unpaired"], "significance.design",
                           help="Paired: one seed draw shared by both arms.")
        sample_seeds = url_toggle("Resample pretraining seeds", "significance.seeds", True)
        sample_examples = url_toggle("Resample examples", "significance.examples", True)
        # A short label: the column is narrow at 1280 px; the caption below says more.
        sample_finetune = url_toggle("Nested design", "significance.nested", False,
                                     help=NESTED_NOTE)
    with o2:
        nboot = url_number("Replicates (nboot)", "significance.nboot", 1000, int, 100, 20000,
                           step=100)
        confidence = url_number("Confidence level", "significance.confidence", 0.95, float,
                                0.5, 0.999, step=0.01)
        rng_seed = url_number("Random seed", "significance.rng", 0, int, 0, 2**31 - 1)
    with o3:
        sign = url_radio("Expected effect", ["treatment better", "treatment worse"],
                         "significance.sign")
        thresholds_text = url_text("Thresholds (comma separated)", "significance.thresholds",
                                   "0.005, 0.01",
                                   help="Report P(delta >= t) for each t, or"
                                        " P(delta <= -t) when the treatment is expected"
                                        " worse.")
    st.caption("**Nested design** (also resample fine-tuning runs): " + NESTED_NOTE)
try:
    thresholds = [float(t) for t in thresholds_text.split(",") if t.strip()]
except ValueError:
    st.warning(f"Thresholds {thresholds_text!r} are not numbers; ignoring them.")
    thresholds = []

if (base_size, base_ckpt) == (expt_size, expt_ckpt):
    st.info("Baseline and treatment are the same configuration: choose a different size or"
            " checkpoint for one of them.")
    st.stop()


def as_ckpt(text: str) -> object:
    return "last" if text == "last" else float(text)


try:
    with st.spinner(f"Running {nboot} Multi-Bootstrap replicates ..."):
        out = data.significance(ds, data.query(
            sel, SignificanceQuery, sizes=(), checkpoint="last",
            baseline=(base_size, as_ckpt(base_ckpt)), treatment=(expt_size, as_ckpt(expt_ckpt)),
            paired=design == "paired", nboot=nboot,
            sample_seeds=sample_seeds, sample_examples=sample_examples,
            sample_finetune=sample_finetune, confidence=confidence, rng=rng_seed,
            thresholds=thresholds or None, expected_sign=1 if sign.endswith("better") else -1))
except (NotEnoughData, ValueError) as exc:
    st.warning(str(exc))
    st.stop()

result, base_name, expt_name = out.bootstrap, out.base_name, out.expt_name
for warning in out.warnings:
    st.warning(warning)
p_text = p_value_text(result["delta"]["p"], out.p_floor)
statement = reading(result, base_name, expt_name, "accuracy", p_text)
st.info(statement, icon=":material/lightbulb:")
pin_text_button("Significance", statement, key="significance.statement.pin",
                caption=sel.describe())
m = st.columns(4)
m[0].metric(f"Baseline {base_name}", f"{result['base']['mean']:.4f}",
            help=f"interval {result['base']['low']:.4f} to {result['base']['high']:.4f}")
m[1].metric(f"Treatment {expt_name}", f"{result['expt']['mean']:.4f}",
            help=f"interval {result['expt']['low']:.4f} to {result['expt']['high']:.4f}")
m[2].metric("Difference", f"{result['delta']['mean']:+.4f}")
m[3].metric("p-value (one-sided)", p_text,
            help=f"Resolution 1/nboot = {out.p_floor:.2g}: with {result['nboot']} replicates"
                 " a smaller p-value cannot be told apart, so it shows as below that.")
level = round(100 * result["confidence"])
tail = "at or below 0" if sign.endswith("better") else "at or above 0"
st.caption(f"The p-value is **one-sided**: the share of replicates whose difference is {tail},"
           f" against the expected direction ({sign}). The {level}% interval is"
           f" **two-sided**: the central {level}% of the replicates. So p below"
           f" {(1 - result['confidence']) / 2:g} goes with an interval that excludes zero,"
           f" and a p-value between that and {1 - result['confidence']:g} beside an interval"
           " that includes zero is not a contradiction.")
show_table(out.table, key="significance.table")
if out.thresholds is not None:
    show_table(out.thresholds, key="significance.thresholds_table")
show_figure(
    bootstrap_figure(out.draws, result["delta"]["low"], result["delta"]["high"],
                     f"{sel.task}: bootstrap distribution of {expt_name} - {base_name}",
                     "difference in accuracy (treatment - baseline)"),
    key="significance.draws", page="Significance",
    caption=f"{sel.task} · {base_name} vs {expt_name} · {design}, {result['nboot']} replicates,"
            f" seed {result['seed']} · {out.seeds_text()} · N = {result['n_examples']}"
            " examples.")
