"""A small seedlab home for dashboard tests, built with store transactions.

Two tasks:

* ``nli_sim`` (marked simulated): 60 instances (40 ``dev_matched``, 20 ``dev_mismatched``)
  with text and a ``group`` extra, 3 sizes (tiny, mini, base) x 3 pretraining seeds
  ("0", "1", "2") x 3 fine-tuning seeds (1, 2, 3) x 2 checkpoints (1.0, 2.0). Instances
  0-7 are built to decay (right for tiny, wrong for base), 8-11 to be flipped by the
  pretraining seed (right for seeds "0" and "1", wrong for "2"), the rest improve or stay.
  Annotations on a few instances by two annotators, head and MLP masks for 3 seeds, and
  mask evaluation results.
* ``sst_one``: 20 instances, one size, one pretraining seed, one fine-tuning seed, one
  checkpoint: the partial-data case.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from seedlab.store import RunData, Store

NLI_LABELS = ["entailment", "neutral", "contradiction"]
SIZES = ["tiny", "mini", "base"]
PRETRAIN_SEEDS = ["0", "1", "2"]
FINETUNE_SEEDS = [1, 2, 3]
CHECKPOINTS = [1.0, 2.0]
N_NLI = 60
DECAYING = [f"nli-{i:03d}" for i in range(8)]


def _probs(rng: np.random.Generator, p_gold: np.ndarray, gold: np.ndarray, k: int
           ) -> np.ndarray:
    """(N, k) probabilities with ``p_gold`` on the gold class, the rest spread at random."""
    rest = rng.dirichlet(np.ones(k - 1), size=len(gold)) * (1 - p_gold)[:, None]
    out = np.empty((len(gold), k))
    for i, g in enumerate(gold):
        out[i] = np.insert(rest[i], g, p_gold[i])
    return out


def _run_table(rng: np.random.Generator, ids: list[str], gold: np.ndarray,
               p_gold_by_ckpt: dict[float, np.ndarray], k: int) -> pa.Table:
    rows: dict[str, list] = {c: [] for c in
                             ("checkpoint", "instance_id", "pred", "correct", "p_correct", "probs")}
    for ckpt, p_gold in p_gold_by_ckpt.items():
        probs = _probs(rng, p_gold, gold, k)
        pred = probs.argmax(axis=1)
        rows["checkpoint"] += [ckpt] * len(ids)
        rows["instance_id"] += ids
        rows["pred"] += pred.tolist()
        rows["correct"] += (pred == gold).tolist()
        rows["p_correct"] += probs[np.arange(len(ids)), gold].tolist()
        rows["probs"] += probs.tolist()
    return pa.table(rows)


def make_fixture_home(path: str | Path) -> Path:
    """Build the fixture store under ``path`` (created) and return the home."""
    home = Path(path)
    store = Store(home)
    rng = np.random.default_rng(20210601)

    ids = [f"nli-{i:03d}" for i in range(N_NLI)]
    gold = rng.integers(0, 3, size=N_NLI)
    gold[:12] = 0
    groups = ["decaying" if i < 8 else ("seed-flip" if i < 12 else "control")
              for i in range(N_NLI)]
    instances = pd.DataFrame({
        "instance_id": ids,
        "split": ["dev_matched"] * 40 + ["dev_mismatched"] * 20,
        "guid": [f"g{i}" for i in range(N_NLI)],
        "text_a": [f"Premise number {i}: a person is walking a dog in the park." for i in ids],
        "text_b": [f"Hypothesis {i}: someone is outside." for i in ids],
        "label": [NLI_LABELS[g] for g in gold],
        "group": groups,
    })
    # Instance difficulty: the probability of the gold label per size, before seed noise.
    base_p = {"tiny": rng.uniform(0.35, 0.9, N_NLI)}
    base_p["mini"] = np.clip(base_p["tiny"] + 0.08, 0, 0.97)
    base_p["base"] = np.clip(base_p["tiny"] + 0.16, 0, 0.98)
    for size, level in zip(SIZES, (0.9, 0.6, 0.15)):
        base_p[size][:8] = level  # decaying instances: worse with size

    with store.transaction("fixture", "tests/app_support.py") as tx:
        tx.set_task("nli_sim", NLI_LABELS, simulated=True,
                    description="Fixture data for dashboard tests.")
        tx.add_instances("nli_sim", instances)
        for s_index, size in enumerate(SIZES):
            for pretrain_seed in PRETRAIN_SEEDS:
                seed_shift = rng.normal(0, 0.05, N_NLI)
                for finetune_seed in FINETUNE_SEEDS:
                    by_ckpt = {}
                    for ckpt in CHECKPOINTS:
                        p = base_p[size] + seed_shift + rng.normal(0, 0.08, N_NLI)
                        p += 0.03 * (ckpt - 2.0)
                        # seed-flip instances: pretraining seed "2" gets them wrong
                        p[8:12] = 0.15 if pretrain_seed == "2" else 0.9
                        by_ckpt[ckpt] = np.clip(p, 0.02, 0.98)
                    table = _run_table(rng, ids, gold, by_ckpt, 3)
                    tx.add_run(RunData("nli_sim", size, pretrain_seed, finetune_seed, table,
                                       source="fixture", model=f"bert-{size}",
                                       hyperparameters={"lr": 2e-5 * (s_index + 1)}))

        sst_ids = [f"sst-{i:02d}" for i in range(20)]
        sst_gold = rng.integers(0, 2, size=20)
        tx.set_task("sst_one", ["negative", "positive"])
        tx.add_instances("sst_one", pd.DataFrame({
            "instance_id": sst_ids, "split": "dev", "guid": sst_ids,
            "text_a": [f"A film review number {i}." for i in range(20)], "text_b": "",
            "label": [["negative", "positive"][g] for g in sst_gold],
        }))
        sst_p = np.clip(rng.uniform(0.2, 1.0, 20), 0.02, 0.98)
        tx.add_run(RunData("sst_one", "base", "0", 1,
                           _run_table(rng, sst_ids, sst_gold, {1.0: sst_p}, 2),
                           source="fixture", model="bert-base"))

        masks = []
        for seed in (1, 2, 3):
            kept_heads = rng.random((12, 12)) < 0.6
            for layer in range(12):
                for head in range(12):
                    masks.append((seed, "head", layer, head, bool(kept_heads[layer, head]), 0.0))
                masks.append((seed, "mlp", layer, -1, bool(rng.random() < 0.7), 0.0))
        tx.add_masks("lottery", "nli_sim", pd.DataFrame(
            masks, columns=["seed", "component", "layer", "head", "kept", "importance"]))
        tx.add_evaluations(pd.DataFrame({
            "experiment": ["lottery"] * 3, "variant": ["good", "random", "bad"],
            "task": ["nli_sim"] * 3, "metric": ["accuracy"] * 3,
            "mean": [0.81, 0.74, 0.52], "std": [0.01, 0.02, 0.04],
        }))
        tx.add_annotations(pd.DataFrame({
            "task": ["nli_sim"] * 5,
            "instance_id": [DECAYING[0], DECAYING[1], DECAYING[2], DECAYING[0], DECAYING[1]],
            "annotator": ["ann", "ann", "ann", "bob", "bob"],
            "verdict": ["wrong", "reasonable", "correct", "wrong", "correct"],
            "note": ["", "ambiguous premise", "", "", ""],
        }))
    return home


if __name__ == "__main__":  # build one by hand: python tests/app_support.py /tmp/home
    import sys

    print(make_fixture_home(sys.argv[1]))


# ---------------------------------------------------------------------------------------
# AppTest support


def navigation_only() -> None:
    """AppTest routes through ``app.py``'s navigation, as a warm server does."""
    from seedlab.ui.frame import route_app_tests_through_navigation

    route_app_tests_through_navigation()


def app_test(home: str | Path, page: str | None = None,
             query: dict[str, str | list[str]] | None = None, timeout: float = 60):
    """An AppTest of ``app.py`` over the store at ``home``, run once (on ``page``, e.g.
    ``"pages/agreement.py"``, after the first run), with ``query`` set as the URL's query
    parameters before the first run. ``SEEDLAB_HOME`` is set to ``home``."""
    import os

    from streamlit.testing.v1 import AppTest

    navigation_only()
    os.environ["SEEDLAB_HOME"] = str(home)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"),
                           default_timeout=timeout)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    return at


def shown_texts(at) -> list[str]:
    """Every text an AppTest run shows a reader: captions, markdown, plain text, and each
    figure's title and subtitle (a figure's caption is its subtitle since captions stopped
    repeating it under the chart; ``ui.figure.with_caption`` breaks its lines at the
    caption's " · " separators and escapes it, which this undoes)."""
    import html
    import json

    texts = [e.value for e in (*at.caption, *at.markdown, *at.get("text")) if e.value]
    for chart in at.get("plotly_chart"):
        title = json.loads(chart.proto.spec).get("layout", {}).get("title", {}) or {}
        if title.get("text"):
            texts.append(html.unescape(title["text"]))
        subtitle = (title.get("subtitle") or {}).get("text")
        if subtitle:
            texts.append(html.unescape(subtitle.replace("<br>", " ")))
    return texts


def plain(text: str) -> str:
    """``text`` with the " · " separators and line breaks of a wrapped subtitle read as
    plain spaces, for comparing a caption with what a figure's subtitle shows."""
    return " ".join(text.replace("·", " ").split())


def said(at, fragment: str) -> bool:
    """Whether the run shows ``fragment`` in any text (see ``shown_texts``), separators
    and line breaks aside."""
    wanted = plain(fragment)
    return any(wanted in plain(t) for t in shown_texts(at))


def fill_runs_grid(at, *, task: str, model: str, size: str, pretrain: str, finetune: str,
                   checkpoints: str, epochs: float) -> None:
    """Fill the Runs page's grid form (its text fields in page order) and press Preview."""
    at.text_input[0].set_value(task)
    at.text_area[0].set_value(model)
    at.text_input[2].set_value(size)
    at.text_input[3].set_value(pretrain)
    at.text_input[4].set_value(finetune)
    at.text_input[5].set_value(checkpoints)
    at.number_input[0].set_value(epochs)
    next(b for b in at.button if b.label == "Preview").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
