"""The Significance page: the Multi-Bootstrap (Sellam et al. 2021) between two
configurations, each a (size, checkpoint) with the query's seeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from seedlab import stats
from seedlab.align import align_instances, usable_runs
from seedlab.analyses.query import NotEnoughData, Query, Reader, checkpoint_key


def checkpoint_name(checkpoint: Any) -> str:
    """A checkpoint (epochs) as every page writes it: ``last``, ``2``, ``0.5``, ``3.33``
    (two decimals at most; the rule of ``seedlab.ui.tables.checkpoint_text``, kept here
    because analyses do not import the Streamlit layer)."""
    if checkpoint == "last":
        return "last"
    value = float(checkpoint)
    if value.is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def arm_name(size: str, checkpoint: Any) -> str:
    """``size (checkpoint)`` as the page names a configuration: ``tiny (last)``,
    ``base (0.5)``, ``base (3.33)``."""
    return f"{size} ({checkpoint_name(checkpoint)})"


# What the nested design does to the interval, as docs/stats.md ("The nested bootstrap")
# measured it on 300 simulated studies per setting with a known difference.
NESTED_NOTE = (
    "Resampling pretraining seeds already carries each seed's fine-tuning noise; the nested"
    " design counts it a second time, so its interval is **conservative** (wider than the"
    " truth) from 5 pretraining seeds on: 95% intervals covered 0.950 of 300 simulated"
    " studies at 5 pretraining x 5 fine-tuning seeds and 0.977 at 10 x 5 (0.913 and 0.943"
    " without nesting), with a standard deviation 1.2x the true one. It does not make up for"
    " few seeds: at 3 x 10 it covered 0.890 (0.813 without). Figures: docs/stats.md.")


def threshold_column(expected_sign: int) -> str:
    """The thresholds table's probability column: ``P(delta >= t)`` for an expected
    positive effect, ``P(delta <= -t)`` for an expected negative one (a replicate exactly
    at the threshold counts, as in the original Multi-Bootstrap)."""
    return "P(delta >= t)" if expected_sign >= 0 else "P(delta <= -t)"


@dataclass(frozen=True, kw_only=True)
class SignificanceQuery(Query):
    """``baseline`` and ``treatment``: (size, checkpoint) each (``'last'`` or a value); the
    query's ``sizes`` and ``checkpoint`` are not used. The rest are
    ``stats.multibootstrap``'s options."""

    baseline: tuple[str, Any]
    treatment: tuple[str, Any]
    paired: bool = True
    nboot: int = 1000
    sample_seeds: bool = True
    sample_examples: bool = True
    sample_finetune: bool = False
    confidence: float = 0.95
    rng: int = 0
    thresholds: tuple[float, ...] | None = None
    expected_sign: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("baseline", "treatment"):
            size, ckpt = getattr(self, name)
            object.__setattr__(self, name, (str(size), checkpoint_key(ckpt)))
        if self.thresholds is not None:
            object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))


@dataclass(frozen=True)
class Significance:
    """``bootstrap``: ``stats.multibootstrap``'s result (base, expt, delta, draws, nboot,
    seed, n_examples, seeds, thresholds, warnings, ...). ``table``: mean, low, high of the
    baseline, the treatment and their difference, named by ``arm_name``. ``thresholds``:
    threshold t and its probability (``threshold_column``), or None when none were asked
    for. ``warnings``: what the result warns about (seeds the paired design dropped; one
    pretraining seed in an arm, where the interval is far too narrow). ``runs``: per arm
    (``base``, ``expt``) the (pretraining seed, fine-tuning seed) of every complete run
    the bootstrap used: after the paired design has dropped the pretraining seeds only one
    arm has, these are the seeds the numbers come from (not the query's)."""

    bootstrap: dict
    base_name: str
    expt_name: str
    table: pd.DataFrame = field(repr=False)
    thresholds: pd.DataFrame | None = field(repr=False)
    runs: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)

    @property
    def draws(self) -> np.ndarray:
        """``(nboot,)`` bootstrap draws of the difference (treatment - baseline)."""
        return np.asarray(self.bootstrap["draws"]["delta"])

    @property
    def warnings(self) -> list[str]:
        return list(self.bootstrap.get("warnings", []))

    @property
    def p_floor(self) -> float:
        """The resolution of the p-value, ``1 / nboot``: a p-value there is only known to
        be at most this (``stats.multibootstrap`` never reports less)."""
        return 1.0 / int(self.bootstrap["nboot"])

    def pretrain_seeds(self, arm: str) -> list[str]:
        """The pretraining seeds arm ``base`` or ``expt`` was drawn from, in order."""
        return [str(s) for s in self.bootstrap["seeds"][arm]]

    def finetune_seeds(self, arm: str) -> list[int]:
        """The fine-tuning seeds of the runs arm ``base`` or ``expt`` used, sorted."""
        return sorted({f for _, f in self.runs.get(arm, ())})

    def seeds_text(self) -> str:
        """The seeds the bootstrap used, for a caption: ``pretraining seeds 0, 1 ·
        fine-tuning seeds 1, 2, 3``, or each arm's when the arms differ (unpaired)."""
        def one(arm: str) -> str:
            return (f"pretraining seeds {', '.join(self.pretrain_seeds(arm))} · fine-tuning"
                    f" seeds {', '.join(map(str, self.finetune_seeds(arm)))}")

        base, expt = one("base"), one("expt")
        if base == expt:
            return base
        return f"{self.base_name}: {base} · {self.expt_name}: {expt}"


def significance(reader: Reader, query: SignificanceQuery) -> Significance:
    """The Multi-Bootstrap between ``query.baseline`` and ``query.treatment`` on the
    instances both predict, over every run of each that exists and predicts all of them.
    Raises NotEnoughData when they share no instance or one has no complete run, and what
    ``stats.multibootstrap`` raises (ValueError)."""
    loaded = [query.arrays(reader, size, ckpt) for size, ckpt in (query.baseline,
                                                                    query.treatment)]
    if not set(loaded[0].instance_ids) & set(loaded[1].instance_ids):
        raise NotEnoughData("The two configurations share no instances.")
    aligned = align_instances(loaded)
    n = len(aligned)
    rows, seeds, fseeds, treat = [], [], [], []
    for arm, arrays in enumerate(aligned.arrays):
        usable = usable_runs(arrays)
        rows.append(arrays.pred.reshape(n, -1).T[usable])
        for (p, f), ok in zip(((p, f) for p in arrays.pretrain_seeds
                               for f in arrays.finetune_seeds), usable):
            if ok:
                seeds.append(p)
                fseeds.append(f)
                treat.append(arm == 1)
    if sum(treat) == 0 or sum(treat) == len(treat):
        raise NotEnoughData("Each configuration needs at least one complete run.")
    result = stats.multibootstrap(
        np.vstack(rows), aligned.labels, seeds, np.array(treat), finetune_seeds=fseeds,
        paired=query.paired, nboot=query.nboot, sample_seeds=query.sample_seeds,
        sample_examples=query.sample_examples, sample_finetune=query.sample_finetune,
        confidence=query.confidence, rng=query.rng,
        thresholds=list(query.thresholds) if query.thresholds else None,
        expected_sign=query.expected_sign)
    base_name, expt_name = arm_name(*query.baseline), arm_name(*query.treatment)
    drawn = {arm: {str(s) for s in result["seeds"][arm]} for arm in ("base", "expt")}
    used = {arm: tuple((str(p), int(f)) for p, f, t in zip(seeds, fseeds, treat)
                       if t == (arm == "expt") and str(p) in drawn[arm])
            for arm in ("base", "expt")}
    table = pd.DataFrame([{"": name, "mean": result[k]["mean"], "low": result[k]["low"],
                           "high": result[k]["high"]}
                          for k, name in (("base", base_name), ("expt", expt_name),
                                          ("delta", "difference"))])
    column = threshold_column(query.expected_sign)
    thresholds = (pd.DataFrame([{"threshold t": t, column: p}
                                for t, p in result["thresholds"].items()])
                  if result.get("thresholds") else None)
    return Significance(result, base_name, expt_name, table, thresholds, used)
