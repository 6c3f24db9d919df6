"""Small stores built by hand for the page tests of Significance, Overview, Bias and
variance and Pruning masks: every number a test asserts can be worked out from here.

``make_small_study(home, ...)``: task ``t`` (2 labels, ``N`` instances), sizes with the
(pretraining seed, fine-tuning seed) runs each is given, two checkpoints (1 and 10/3
epochs, so a page must write ``3.33``). Size ``small`` is right on the instances of
``SMALL_RIGHT`` (about 60 %), size ``large`` on every instance; a run may be scored on
only the first ``scored`` instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from seedlab.store import RunData, Store

N = 40
CHECKPOINTS = (1.0, 10 / 3)
IDS = [f"t-{i:02d}" for i in range(N)]
GOLD = np.array([i % 2 for i in range(N)])
SMALL_RIGHT = np.array([(i * 7) % 10 < 6 for i in range(N)])  # 24 of 40 right


def run_table(ids: Sequence[str], gold: np.ndarray, right: np.ndarray) -> pa.Table:
    """One run at both checkpoints: right where ``right`` is True (p_correct 0.8), else
    the other label (p_correct 0.3)."""
    pred = np.where(right, gold, 1 - gold)
    p_correct = np.where(right, 0.8, 0.3)
    rows: dict[str, list] = {c: [] for c in ("checkpoint", "instance_id", "pred", "correct",
                                             "p_correct", "probs")}
    for ckpt in CHECKPOINTS:
        rows["checkpoint"] += [ckpt] * len(ids)
        rows["instance_id"] += list(ids)
        rows["pred"] += pred.tolist()
        rows["correct"] += right.tolist()
        rows["p_correct"] += p_correct.tolist()
        rows["probs"] += [[p, 1 - p] if g == 0 else [1 - p, p]
                          for p, g in zip(p_correct, gold)]
    return pa.table(rows)


def make_small_study(home: str | Path,
                     runs: Mapping[str, Sequence[tuple[str, int]]] | None = None,
                     scored: Mapping[str, int] | None = None) -> Store:
    """A store at ``home`` with task ``t``. ``runs``: size -> its (pretraining seed,
    fine-tuning seed) runs (default: ``small`` and ``large``, seeds 0, 1, 2 x 1, 2).
    ``scored``: size -> how many of the first instances its runs predict (default all)."""
    runs = runs or {size: [(p, f) for p in ("0", "1", "2") for f in (1, 2)]
                    for size in ("small", "large")}
    store = Store(Path(home))
    with store.transaction("test", "tests/small_study.py") as tx:
        tx.set_task("t", ["no", "yes"])
        tx.add_instances("t", pd.DataFrame({
            "instance_id": IDS, "split": "dev", "guid": IDS,
            "text_a": [f"text {i}" for i in IDS], "text_b": "",
            "label": [["no", "yes"][g] for g in GOLD]}))
        for size, cells in runs.items():
            n = (scored or {}).get(size, N)
            right = SMALL_RIGHT if size == "small" else np.ones(N, dtype=bool)
            for p, f in cells:
                tx.add_run(RunData("t", size, p, f, run_table(IDS[:n], GOLD[:n], right[:n]),
                                   source="test", model=f"bert-{size}"))
    return store


# ---------------------------------------------------------------------------------------
# What a page shows as a figure's caption


def plain(text: str) -> str:
    """``text`` with the subtitle's line breaks and " · " separators as single spaces, so
    a caption compares the same however the subtitle wrapped it."""
    import html

    text = html.unescape(text.replace("<br>", " ")).replace(" · ", " ").replace("·", " ")
    return " ".join(text.split())


def figure_captions(at) -> list[str]:
    """Each figure's caption as the page shows it (``plain``): its subtitle (the caption
    drawn into the figure), and the full caption a page prints under a figure whose
    subtitle had to shorten it."""
    import plotly.io as pio

    out = []
    for chart in at.get("plotly_chart"):
        subtitle = pio.from_json(chart.proto.spec).layout.title.subtitle.text
        out.append(plain(subtitle or ""))
    out += [plain(t.value) for t in at.text]
    return out
