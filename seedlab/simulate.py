"""Simulated seed studies with planted, known structure.

``simulate(...)`` draws a study in the shape of Zhong et al. (2021) and MultiBERTs: N
instances, several model sizes, P pretraining seeds x F fine-tuning seeds per size, and E
checkpoints per run. Because every effect is planted, the truth is known: per-instance
difficulty, which instances decay with size, which gold labels are wrong, and the true
variance components per instance. Tests check that ``seedlab.stats`` recovers them; the
app's default dataset (``data/``) is such a study, and says so (``simulated=True``).

The model
---------
For instance ``i``, size ``s``, pretraining seed ``p``, fine-tuning seed ``f`` and
checkpoint ``e``, the logit of the instance's *true* class is::

    z[i,s,p,f,e] = ability[s] - difficulty[i] + decay_shift[i,s]
                   + u[i,s,p] + v[i,s,p,f] + w[i,s,p,f,e]

    u ~ N(0, pretrain_sd^2)     one draw per (instance, size, pretraining seed)
    v ~ N(0, finetune_sd^2)     one draw per (instance, size, pretraining seed, fine-tuning seed)
    w ~ N(0, checkpoint_sd^2)   one draw per run and checkpoint

* ``ability`` rises linearly over the sizes (given smallest first) from ``ability[0]`` to
  ``ability[1]``; ``difficulty ~ N(0, difficulty_sd^2)``.
* The model gives the true class ``sigmoid(z)`` and spreads the rest over the other classes
  in fixed per-instance shares (``rest``, a Dirichlet draw; for 2 classes all of it goes
  to the other class). The class with the largest share is the instance's *confuser*.
* Decaying instances (``decaying_share``) are easy for the smallest size
  (``ability[0] - difficulty`` uniform in ``easy_margin``) and get a shift that grows
  linearly with the size index, ``decay_shift[i,s] = -(s/(S-1)) * (ability[-1] - ability[0]
  + drop[i])`` with ``drop ~ U(decay_drop)``, so each larger size is worse on them.
* Wrong gold labels (``wrong_label_share``, drawn among the other instances): the stored
  gold label is the confuser, so the models "disagree" with gold, more so the larger they
  are.

Pretraining seed labels are ``'0'..'P-1'`` (shared by name across sizes, drawn
independently per size), fine-tuning seeds ``1..F``, and the checkpoints are Zhong's
epochs ``i/3`` for ``i = 13-E .. 12`` (``[3.0, 3.3333, 3.6667, 4.0]`` for E = 4).

Every random draw comes from ``numpy.random.SeedSequence(seed)``: the instance-level truth
from one stream, and each (size, pretraining seed) from its own stream, so a run can be
generated alone (memory stays bounded at QQP scale: 79,497 x 5 x 10 x 5 x 4) and adding
pretraining seeds leaves the existing ones unchanged. Arrays are float32.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from scipy.special import ndtr

if TYPE_CHECKING:
    from seedlab.store import Store

DEFAULT_SIZES = ("mini", "small", "medium", "base", "large")
MNLI_LABELS = ["contradiction", "entailment", "neutral"]
SOURCE = "seedlab simulate"


def checkpoint_values(n_checkpoints: int) -> list[float]:
    """Zhong's checkpoints: epochs ``i/3`` for ``i = 13-E .. 12`` (E between 1 and 12)."""
    if not 1 <= n_checkpoints <= 12:
        raise ValueError(f"checkpoints must be between 1 and 12, not {n_checkpoints}")
    return [i / 3 for i in range(13 - n_checkpoints, 13)]


def default_label_list(n_classes: int) -> list[str]:
    """``['0', '1']`` for 2 classes (SST-2, QQP), MNLI's names for 3, else ``'0'..'C-1'``."""
    if n_classes == 3:
        return list(MNLI_LABELS)
    return [str(k) for k in range(n_classes)]


@dataclass(frozen=True)
class SimulationParams:
    """Everything that determines a simulated study (stored as its provenance)."""

    n_instances: int
    sizes: tuple[str, ...]
    pretrain_seeds: int
    finetune_seeds: int
    checkpoints: int
    n_classes: int = 2
    decaying_share: float = 0.05
    wrong_label_share: float = 0.02
    pretrain_sd: float = 0.6
    finetune_sd: float = 0.5
    checkpoint_sd: float = 0.3
    difficulty_sd: float = 2.0
    ability: tuple[float, float] = (2.0, 3.5)
    decay_drop: tuple[float, float] = (2.5, 5.0)
    easy_margin: tuple[float, float] = (1.5, 3.0)
    seed: int = 0
    task: str = "sim"
    pair: bool = False
    decimals: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("sizes", "ability", "decay_drop", "easy_margin"):
            out[key] = list(out[key])
        return out


@dataclass
class RunArrays:
    """One run (size, pretraining seed, fine-tuning seed), all checkpoints.

    Shapes: ``probs (N, E, C)`` float32; ``pred (N, E)`` int64; ``p_correct (N, E)``
    float32 (probability of the stored gold label); ``correct (N, E)`` bool.
    """

    probs: np.ndarray
    pred: np.ndarray
    p_correct: np.ndarray
    correct: np.ndarray


@dataclass
class SizeArrays:
    """All runs of one size. Shapes: ``p_correct (N, P, F, E)`` float32, ``pred (N, P, F, E)``
    int64, ``correct (N, P, F, E)`` bool. ``last()`` gives the last checkpoint, (N, P, F)."""

    p_correct: np.ndarray
    pred: np.ndarray
    correct: np.ndarray

    def last(self) -> SizeArrays:
        return SizeArrays(self.p_correct[..., -1], self.pred[..., -1], self.correct[..., -1])


@dataclass
class SimulatedStudy:
    """A simulated study: the planted truth plus generators for its predictions.

    Per-instance truth, all shape ``(N,)``: ``labels`` (stored gold label, index into
    ``label_list``), ``true_labels`` (the class the models learn), ``difficulty``,
    ``decaying`` and ``wrong_label`` (bool masks), ``confuser``; ``rest (N, C)`` the share
    of the non-true probability mass per class; ``ability (S,)``; ``decay_shift (N, S)``.

    Predictions are generated on demand and deterministically: ``run(size, p, f)`` for one
    run, ``arrays(size)`` for a size (``(N, P, F, E)``, cached), ``probs(size)`` for the full
    ``(N, P, F, E, C)`` tensor. ``true_components(size)`` gives the variance components of
    the planted model per instance.
    """

    params: SimulationParams
    label_list: list[str]
    instance_ids: np.ndarray
    text_a: np.ndarray
    text_b: np.ndarray | None
    labels: np.ndarray
    true_labels: np.ndarray
    difficulty: np.ndarray
    decaying: np.ndarray
    wrong_label: np.ndarray
    confuser: np.ndarray
    rest: np.ndarray
    ability: np.ndarray
    decay_shift: np.ndarray
    _cache: dict[str, SizeArrays] = field(default_factory=dict, repr=False)

    # -- names ---------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.params.task

    @property
    def sizes(self) -> list[str]:
        return list(self.params.sizes)

    @property
    def pretrain_seeds(self) -> list[str]:
        return [str(p) for p in range(self.params.pretrain_seeds)]

    @property
    def finetune_seeds(self) -> list[int]:
        return list(range(1, self.params.finetune_seeds + 1))

    @property
    def checkpoints(self) -> list[float]:
        return checkpoint_values(self.params.checkpoints)

    @property
    def n_instances(self) -> int:
        return self.params.n_instances

    @functools.cached_property
    def instance_id_array(self) -> pa.Array:
        """The instance ids as one Arrow string array, shared by every run table."""
        return pa.array(self.instance_ids.tolist(), pa.string())

    def _size_index(self, size: str) -> int:
        try:
            return self.sizes.index(size)
        except ValueError:
            known = ", ".join(self.sizes)
            raise KeyError(f"size {size!r} is not in this study ({known})") from None

    # -- generation ----------------------------------------------------------------------
    def mean_logit(self, size: str) -> np.ndarray:
        """``ability[s] - difficulty + decay_shift[:, s]``, shape (N,)."""
        s = self._size_index(size)
        return (self.ability[s] - self.difficulty + self.decay_shift[:, s]).astype(np.float64)

    def latent(self, size: str, pretrain_index: int) -> np.ndarray:
        """Logits of the true class for all runs of one pretraining seed: (N, F, E) float32."""
        prm = self.params
        s = self._size_index(size)
        if not 0 <= pretrain_index < prm.pretrain_seeds:
            raise IndexError(f"pretraining seed index {pretrain_index} is out of range")
        stream = np.random.SeedSequence(prm.seed, spawn_key=(1, s, pretrain_index))
        rng = np.random.default_rng(stream)
        n, f, e = prm.n_instances, prm.finetune_seeds, prm.checkpoints
        u = rng.standard_normal(n, dtype=np.float32) * np.float32(prm.pretrain_sd)
        v = rng.standard_normal((n, f), dtype=np.float32) * np.float32(prm.finetune_sd)
        w = rng.standard_normal((n, f, e), dtype=np.float32) * np.float32(prm.checkpoint_sd)
        base = self.mean_logit(size).astype(np.float32) + u
        return base[:, None, None] + v[:, :, None] + w

    def _from_latent(self, z: np.ndarray) -> RunArrays:
        """Class probabilities and scores from true-class logits of shape (N, ...)."""
        p_true = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        extra = (1,) * (z.ndim - 1)
        rest = self.rest.reshape(self.rest.shape[0], *extra, -1).astype(np.float32)
        probs = (np.float32(1.0) - p_true)[..., None] * rest
        true = np.broadcast_to(self.true_labels.reshape(-1, *extra, 1), (*z.shape, 1))
        if self.params.decimals is not None:
            # Round the other classes, and give the true class what is left (sums stay 1).
            probs = np.round(probs, self.params.decimals)
            np.put_along_axis(probs, true, 0.0, axis=-1)
            p_true = np.float32(1.0) - probs.sum(axis=-1, dtype=np.float32)
        np.put_along_axis(probs, true, p_true[..., None], axis=-1)
        pred = probs.argmax(axis=-1)
        gold = self.labels.reshape(-1, *extra, 1)
        p_correct = np.take_along_axis(probs, np.broadcast_to(gold, (*z.shape, 1)), axis=-1)[..., 0]
        return RunArrays(probs=probs, pred=pred, p_correct=p_correct,
                         correct=pred == self.labels.reshape(-1, *extra))

    def run(self, size: str, pretrain_index: int, finetune_index: int) -> RunArrays:
        """One run by seed position (0-based), shapes (N, E[, C])."""
        z = self.latent(size, pretrain_index)[:, finetune_index, :]
        return self._from_latent(z)

    def iter_runs(self, size: str) -> Iterator[tuple[str, int, RunArrays]]:
        """``(pretrain_seed, finetune_seed, RunArrays)`` for every run of a size, generating
        one pretraining seed at a time."""
        for p, p_label in enumerate(self.pretrain_seeds):
            scores = self._from_latent(self.latent(size, p))
            for f, f_label in enumerate(self.finetune_seeds):
                yield p_label, f_label, RunArrays(
                    probs=scores.probs[:, f], pred=scores.pred[:, f],
                    p_correct=scores.p_correct[:, f], correct=scores.correct[:, f],
                )

    def arrays(self, size: str) -> SizeArrays:
        """Scores of every run of a size: ``(N, P, F, E)`` arrays (cached)."""
        if size not in self._cache:
            self._size_index(size)
            parts = [self._from_latent(self.latent(size, p))
                     for p in range(self.params.pretrain_seeds)]
            self._cache[size] = SizeArrays(
                p_correct=np.stack([r.p_correct for r in parts], axis=1),
                pred=np.stack([r.pred for r in parts], axis=1),
                correct=np.stack([r.correct for r in parts], axis=1),
            )
        return self._cache[size]

    def probs(self, size: str) -> np.ndarray:
        """Class probabilities of every run of a size: ``(N, P, F, E, C)`` float32."""
        return np.stack([self._from_latent(self.latent(size, p)).probs
                         for p in range(self.params.pretrain_seeds)], axis=1)

    # -- truth ---------------------------------------------------------------------------
    def _threshold(self) -> np.ndarray:
        """The true class is predicted iff ``z >= threshold``: ``log(max rest)``, (N,)."""
        return np.log(self.rest.max(axis=1))

    def expected_accuracy(self, size: str) -> np.ndarray:
        """Probability that a run of this size is correct on each instance, (N,)."""
        prm = self.params
        total = math.sqrt(prm.pretrain_sd**2 + prm.finetune_sd**2 + prm.checkpoint_sd**2)
        right = ndtr((self.mean_logit(size) - self._threshold()) / max(total, 1e-9))
        return np.where(self.wrong_label, 1.0 - right, right)

    def truly_decaying(self, small: str, large: str) -> np.ndarray:
        """Instances whose expected accuracy is lower for ``large`` than ``small``, (N,) bool.

        This includes the planted decaying instances and wrong-label instances that the
        smaller size still gets "right" sometimes."""
        return self.expected_accuracy(large) < self.expected_accuracy(small)

    def true_components(self, size: str, score: str = "correct", *,
                        checkpoints: str = "last", nodes: int = 24) -> dict[str, np.ndarray]:
        """Variance components of the planted model per instance, as ``seedlab.stats.
        decompose`` estimates them (shared/docs/statistics.md, section 1).

        ``score``: ``'correct'`` (0/1) or ``'p_correct'`` (gold-label probability).
        ``checkpoints='last'``: 3-D, fine-tuning variance includes checkpoint noise;
        ``'all'``: 4-D, with ``var_checkpoint``. Computed by Gauss-Hermite quadrature (the
        0/1 case integrates the innermost noise exactly). Returns ``loss``, ``bias2``,
        ``var_pretrain``, ``var_finetune`` and, for 4-D, ``var_checkpoint``, each (N,).
        """
        if score not in ("correct", "p_correct"):
            raise ValueError("score must be 'correct' or 'p_correct'")
        prm = self.params
        x, wts = np.polynomial.hermite_e.hermegauss(nodes)
        wts = wts / wts.sum()
        mean = self.mean_logit(size)[:, None]  # (N, 1)
        wrong = self.wrong_label[:, None]
        thr = self._threshold()[:, None]
        gold_share = self.rest[np.arange(self.n_instances), self.labels][:, None]

        def inner(m: np.ndarray, sd: float) -> tuple[np.ndarray, np.ndarray]:
            """E[c] and E[c^2] over z ~ N(m, sd^2); m has instances on axis 0."""
            if score == "correct":
                right = ndtr((m - thr.reshape(-1, *(1,) * (m.ndim - 1))) / max(sd, 1e-9))
                mean_c = np.where(wrong.reshape(-1, *(1,) * (m.ndim - 1)), 1.0 - right, right)
                return mean_c, mean_c
            z = m[..., None] + sd * x
            p_true = 1.0 / (1.0 + np.exp(-z))
            shape = (-1, *(1,) * (z.ndim - 1))
            c = np.where(wrong.reshape(shape), (1.0 - p_true) * gold_share.reshape(shape), p_true)
            return c @ wts, (c * c) @ wts

        u = prm.pretrain_sd * x  # (K,)
        out: dict[str, np.ndarray] = {}
        if checkpoints == "last":
            sd = math.hypot(prm.finetune_sd, prm.checkpoint_sd)
            h, h2 = inner(mean + u, sd)  # (N, K) over u
            e_c = h @ wts
            out["var_pretrain"] = (h * h) @ wts - e_c**2
            out["var_finetune"] = (h2 - h * h) @ wts
            e_c2 = h2 @ wts
        elif checkpoints == "all":
            v = prm.finetune_sd * x
            n = self.n_instances
            k_u, var_w, var_v, k2_u = (np.empty((n, nodes)) for _ in range(4))
            for j, u_j in enumerate(u):  # one pretraining node at a time bounds memory
                k, k2 = inner(mean + u_j + v[None, :], prm.checkpoint_sd)  # (N, Kv)
                k_u[:, j] = k @ wts
                var_w[:, j] = (k2 - k * k) @ wts
                var_v[:, j] = (k * k) @ wts - k_u[:, j] ** 2
                k2_u[:, j] = k2 @ wts
            out["var_checkpoint"] = var_w @ wts
            out["var_finetune"] = var_v @ wts
            e_c = k_u @ wts
            out["var_pretrain"] = (k_u * k_u) @ wts - e_c**2
            e_c2 = k2_u @ wts
        else:
            raise ValueError("checkpoints must be 'last' or 'all'")
        out["loss"] = 1.0 - 2.0 * e_c + e_c2
        out["bias2"] = (1.0 - e_c) ** 2
        return out

    # -- rows for the store --------------------------------------------------------------
    def instances_frame(self) -> pd.DataFrame:
        """Instances as the store takes them, with the planted truth as extra fields."""
        planted = np.where(self.decaying, "decaying",
                           np.where(self.wrong_label, "wrong_label", "none"))
        labels = np.array(self.label_list, dtype=object)
        return pd.DataFrame({
            "instance_id": self.instance_ids,
            "split": "dev",
            "guid": self.instance_ids,
            "text_a": self.text_a,
            "text_b": self.text_b if self.text_b is not None else None,
            "label": labels[self.labels],
            "true_label": labels[self.true_labels],
            "planted": planted,
            "difficulty": np.round(self.difficulty, 4),
        })

    def description(self) -> str:
        prm = self.params
        return (
            f"Simulated data, not real model predictions (seedlab simulate, seed {prm.seed}):"
            f" {prm.n_instances} instances, {prm.n_classes} classes, sizes {', '.join(prm.sizes)},"
            f" {prm.pretrain_seeds} pretraining x {prm.finetune_seeds} fine-tuning seeds,"
            f" {prm.checkpoints} checkpoints. Planted: {self.decaying.mean():.1%} decaying"
            f" instances, {self.wrong_label.mean():.1%} wrong gold labels; logit sd pretraining"
            f" {prm.pretrain_sd}, fine-tuning {prm.finetune_sd}, checkpoint {prm.checkpoint_sd},"
            f" difficulty {prm.difficulty_sd}; ability {prm.ability[0]}..{prm.ability[1]}."
            + (f" Probabilities rounded to {prm.decimals} decimals." if prm.decimals else "")
        )


# ---------------------------------------------------------------------------------------


def simulate(
    n_instances: int,
    sizes: Sequence[str] = DEFAULT_SIZES,
    pretrain_seeds: int = 5,
    finetune_seeds: int = 5,
    checkpoints: int = 4,
    *,
    n_classes: int = 2,
    decaying_share: float = 0.05,
    wrong_label_share: float = 0.02,
    pretrain_sd: float = 0.6,
    finetune_sd: float = 0.5,
    checkpoint_sd: float = 0.3,
    difficulty_sd: float = 2.0,
    ability: tuple[float, float] = (2.0, 3.5),
    decay_drop: tuple[float, float] = (2.5, 5.0),
    easy_margin: tuple[float, float] = (1.5, 3.0),
    seed: int = 0,
    task: str = "sim",
    pair: bool | None = None,
    decimals: int | None = None,
) -> SimulatedStudy:
    """Draw a simulated study (the model is in this module's docstring).

    ``sizes`` are given smallest first. ``pair`` (default: ``n_classes > 2``) adds a
    ``text_b`` like an NLI premise/hypothesis pair. ``decimals`` rounds the probabilities
    of the other classes to that many decimals (the true class gets the rest), which makes
    the Parquet files much smaller; the default keeps full float32. The planted shares are exact counts
    (``round(share * N)`` instances). Returns a ``SimulatedStudy`` whose truth arrays are
    ``(N,)``; predictions are generated from it on demand.
    """
    from seedlab.schema import check_name

    check_name("task", task)
    sizes = tuple(str(s) for s in sizes)
    for size in sizes:
        check_name("size", size)
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"sizes repeat: {', '.join(sizes)}")
    for name, value in (("n_instances", n_instances), ("pretrain_seeds", pretrain_seeds),
                        ("finetune_seeds", finetune_seeds), ("n_classes", n_classes - 1)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least {1 if name != 'n_classes' else 2}")
    checkpoint_values(checkpoints)
    for name, share in (("decaying_share", decaying_share),
                        ("wrong_label_share", wrong_label_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, not {share}")
    if decimals is not None and not 1 <= int(decimals) <= 8:
        raise ValueError(f"decimals must be between 1 and 8, not {decimals}")
    if decaying_share + wrong_label_share > 1.0:
        raise ValueError("decaying_share + wrong_label_share must not exceed 1")
    for name, sd in (("pretrain_sd", pretrain_sd), ("finetune_sd", finetune_sd),
                     ("checkpoint_sd", checkpoint_sd), ("difficulty_sd", difficulty_sd)):
        if sd < 0:
            raise ValueError(f"{name} must not be negative")
    params = SimulationParams(
        n_instances=int(n_instances), sizes=sizes, pretrain_seeds=int(pretrain_seeds),
        finetune_seeds=int(finetune_seeds), checkpoints=int(checkpoints), n_classes=int(n_classes),
        decaying_share=float(decaying_share), wrong_label_share=float(wrong_label_share),
        pretrain_sd=float(pretrain_sd), finetune_sd=float(finetune_sd),
        checkpoint_sd=float(checkpoint_sd), difficulty_sd=float(difficulty_sd),
        ability=(float(ability[0]), float(ability[1])),
        decay_drop=(float(decay_drop[0]), float(decay_drop[1])),
        easy_margin=(float(easy_margin[0]), float(easy_margin[1])), seed=int(seed), task=task,
        pair=bool(n_classes > 2 if pair is None else pair),
        decimals=None if decimals is None else int(decimals),
    )
    n, c, s_count = params.n_instances, params.n_classes, len(sizes)
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(0,)))

    ability_arr = np.linspace(params.ability[0], params.ability[1], s_count)
    difficulty = rng.normal(0.0, params.difficulty_sd, n)
    true_labels = rng.integers(0, c, n)

    # Planted groups: exact counts, disjoint.
    order = rng.permutation(n)
    n_decaying = round(params.decaying_share * n)
    n_wrong = round(params.wrong_label_share * n)
    decaying = np.zeros(n, dtype=bool)
    decaying[order[:n_decaying]] = True
    wrong_label = np.zeros(n, dtype=bool)
    wrong_label[order[n_decaying:n_decaying + n_wrong]] = True

    # Decaying instances: easy for the smallest size, then worse with every size.
    margin = rng.uniform(*params.easy_margin, n)
    difficulty = np.where(decaying, ability_arr[0] - margin, difficulty)
    drop = rng.uniform(*params.decay_drop, n)
    frac = np.arange(s_count) / max(s_count - 1, 1)
    gain = ability_arr[-1] - ability_arr[0]
    decay_shift = np.where(decaying[:, None], -frac[None, :] * (gain + drop[:, None]), 0.0)

    # Shares of the non-true mass; the largest is the confuser, a wrong gold label is it.
    if c == 2:
        rest = np.zeros((n, 2))
        rest[np.arange(n), 1 - true_labels] = 1.0
    else:
        draws = rng.gamma(2.0, 1.0, (n, c))
        draws[np.arange(n), true_labels] = 0.0
        rest = draws / draws.sum(axis=1, keepdims=True)
    confuser = rest.argmax(axis=1)
    labels = np.where(wrong_label, confuser, true_labels)

    text_a, text_b = _texts(rng, true_labels, c, params.pair)
    width = len(str(n - 1))
    instance_ids = np.array([f"dev-{i:0{width}d}" for i in range(n)], dtype=object)
    return SimulatedStudy(
        params=params, label_list=default_label_list(c), instance_ids=instance_ids,
        text_a=text_a, text_b=text_b, labels=labels.astype(np.int64),
        true_labels=true_labels.astype(np.int64), difficulty=difficulty.astype(np.float32),
        decaying=decaying, wrong_label=wrong_label, confuser=confuser.astype(np.int64),
        rest=rest.astype(np.float32), ability=ability_arr.astype(np.float32),
        decay_shift=decay_shift.astype(np.float32),
    )


_SUBJECTS = np.array(["the film", "this movie", "the plot", "the cast", "the script", "the ending",
                      "the director", "the soundtrack", "the story", "the lead actor"],
                     dtype=object)
_GOOD = np.array(["a delight", "warm and funny", "sharp", "moving", "beautifully made",
                  "a quiet triumph", "clever", "tender"], dtype=object)
_BAD = np.array(["a mess", "dull", "forgettable", "painfully slow", "clumsy", "a chore",
                 "flat", "hollow"], dtype=object)
_MIDDLE = np.array(["uneven", "fine", "long", "busy", "odd", "plain"], dtype=object)
_PEOPLE = np.array(["a man", "a woman", "two children", "an old farmer", "a chef", "the students",
                    "a dog", "a cyclist", "the band", "a nurse"], dtype=object)
_ACTIONS = np.array(["is cooking dinner", "is running in a park", "plays a guitar",
                     "waits for a bus", "reads a newspaper", "climbs a hill", "paints a fence",
                     "sleeps on a couch"], dtype=object)
_PLACES = np.array(["outside", "at night", "in the rain", "near a lake", "in a small town",
                    "after work"], dtype=object)


def _texts(rng: np.random.Generator, true_labels: np.ndarray, n_classes: int,
           pair: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Short synthetic sentences. Single-sentence tasks get a review whose tone follows the
    true class (for 2 classes); pair tasks get a premise and a hypothesis."""
    n = len(true_labels)

    def pick(words: np.ndarray) -> np.ndarray:
        return words[rng.integers(0, len(words), n)]

    if not pair:
        if n_classes == 2:
            tone = np.where(true_labels == 1, pick(_GOOD), pick(_BAD))
        else:
            tone = pick(np.concatenate([_GOOD, _BAD, _MIDDLE]))
        text_a = pick(_SUBJECTS) + " is " + tone + " ."
        return text_a.astype(object), None
    people, actions, places = pick(_PEOPLE), pick(_ACTIONS), pick(_PLACES)
    text_a = people + " " + actions + " " + places + " ."
    other = pick(_ACTIONS)
    text_b = np.where(true_labels % 3 == 1, people + " " + actions + " .",
                      np.where(true_labels % 3 == 0, people + " " + other + " instead .",
                               people + " " + actions + " with a friend ."))
    return text_a.astype(object), text_b.astype(object)


# ---------------------------------------------------------------------------------------
# Writers


def run_table(study: SimulatedStudy, run: RunArrays) -> pa.Table:
    """One run as the store's run table (checkpoint-major rows: N x E), built with
    vectorised pyarrow: ``probs`` is a list array over a flat float32 buffer."""
    n, e = run.pred.shape
    c = run.probs.shape[-1]
    probs = np.ascontiguousarray(run.probs.transpose(1, 0, 2)).reshape(-1)  # (E, N, C) flat
    offsets = pa.array(np.arange(0, n * e * c + 1, c, dtype=np.int32))
    return pa.table({
        "checkpoint": pa.array(np.repeat(np.asarray(study.checkpoints, dtype=np.float64), n)),
        "instance_id": pa.chunked_array([study.instance_id_array] * e),
        "pred": pa.array(run.pred.T.reshape(-1).astype(np.int32)),
        "correct": pa.array(run.correct.T.reshape(-1)),
        "p_correct": pa.array(run.p_correct.T.reshape(-1).astype(np.float32)),
        "probs": pa.ListArray.from_arrays(offsets, pa.array(probs, pa.float32())),
    })


def write_study(store: Store, study: SimulatedStudy | SimulationParams | dict,
                *, replace: bool = False,
                progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Write a study's instances and runs into ``store`` in one transaction.

    ``study`` is a ``SimulatedStudy``, or the parameters to draw one (``SimulationParams``
    or a dict of ``simulate`` keyword arguments). Runs are generated one pretraining seed
    at a time and staged to disk as they are made, so memory stays bounded at any scale.
    ``progress``, if given, is called as ``progress(done_runs, total_runs)``. Returns the
    transaction summary.
    """
    from seedlab.store import RunData

    if isinstance(study, SimulationParams):
        kwargs = study.to_dict()
        study = simulate(kwargs.pop("n_instances"), tuple(kwargs.pop("sizes")),
                         kwargs.pop("pretrain_seeds"), kwargs.pop("finetune_seeds"),
                         kwargs.pop("checkpoints"), **kwargs)
    elif isinstance(study, dict):
        study = simulate(**study)
    prm = study.params
    provenance = {"simulated": True, "params": prm.to_dict()}
    total = len(study.sizes) * prm.pretrain_seeds * prm.finetune_seeds
    done = 0
    with store.transaction("simulate", f"{SOURCE} (seed {prm.seed})", replace=replace) as tx:
        tx.set_task(study.task, study.label_list, simulated=True, source=SOURCE,
                    description=study.description())
        tx.add_instances(study.task, study.instances_frame())
        for s, size in enumerate(study.sizes):
            for p_label, f_label, run in study.iter_runs(size):
                tx.add_run(RunData(
                    task=study.task, size=size, pretrain_seed=p_label, finetune_seed=f_label,
                    table=run_table(study, run), source=SOURCE, model=f"simulated-{size}",
                    hyperparameters={"ability": float(study.ability[s])},
                    provenance=provenance,
                ), spill=True)
                done += 1
                if progress is not None:
                    progress(done, total)
    return dict(tx.summary)


def _write_probabilities(path: Path, probs: np.ndarray) -> None:
    """(N, C) probabilities -> N tab-separated lines, no header. Arrow writes each float32
    as the shortest text that reads back to the same float32."""
    table = pa.table({f"c{k}": pa.array(probs[:, k].astype(np.float32))
                      for k in range(probs.shape[1])})
    pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=False, delimiter="\t",
                                                    quoting_style="none"))


def write_zhong_release(study: SimulatedStudy, out_dir: str | Path) -> Path:
    """Write the study in the layout of Zhong et al.'s ``model_data_for_release``.

    ``<out_dir>/<task>/data.json`` holds ``label_list``, ``train`` (empty) and ``predict``
    (one dict per instance: guid, label, text_a, text_b); ``<task>/results/
    s{size}p{p}f{f}epoch{i}over3.tsv`` holds N rows of C tab-separated probabilities, no
    header, for epochs ``i/3`` (i = 9..12 for 4 checkpoints). Pretraining seeds are written
    by their labels (``p0``..). Returns the task folder.
    """
    folder = Path(out_dir) / study.task
    results = folder / "results"
    results.mkdir(parents=True, exist_ok=True)
    labels = np.array(study.label_list, dtype=object)[study.labels]
    predict = []
    for i in range(study.n_instances):
        row = {"guid": str(study.instance_ids[i]), "label": str(labels[i]),
               "text_a": str(study.text_a[i])}
        row["text_b"] = str(study.text_b[i]) if study.text_b is not None else None
        predict.append(row)
    (folder / "data.json").write_text(json.dumps(
        {"label_list": study.label_list, "train": [], "predict": predict}))
    epochs = [round(c * 3) for c in study.checkpoints]
    for size in study.sizes:
        for p_label, f_label, run in study.iter_runs(size):
            for e, epoch in enumerate(epochs):
                name = f"s{size}p{p_label}f{f_label}epoch{epoch}over3.tsv"
                _write_probabilities(results / name, run.probs[:, e])
    return folder


# ---------------------------------------------------------------------------------------
# Command line


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``seedlab simulate``."""
    parser = sub.add_parser(
        "simulate",
        help="write a simulated study with planted structure (decaying instances, wrong"
             " labels, seed variance)",
        description="Simulate a seed study with known structure; see docs/simulator.md.",
    )
    parser.add_argument("--instances", type=int, default=2000, help="number of instances")
    parser.add_argument("--sizes", default=",".join(DEFAULT_SIZES),
                        help="comma-separated sizes, smallest first")
    parser.add_argument("--pretrain-seeds", type=int, default=5)
    parser.add_argument("--finetune-seeds", type=int, default=5)
    parser.add_argument("--checkpoints", type=int, default=4, help="1..12 (epochs i/3, last 4.0)")
    parser.add_argument("--task", default="sim")
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--pair", action=argparse.BooleanOptionalAction, default=None,
                        help="sentence pairs (default: with more than 2 classes)")
    parser.add_argument("--decaying-share", type=float, default=0.05)
    parser.add_argument("--wrong-label-share", type=float, default=0.02)
    parser.add_argument("--pretrain-sd", type=float, default=0.6,
                        help="logit sd per pretraining seed")
    parser.add_argument("--finetune-sd", type=float, default=0.5,
                        help="logit sd per fine-tuning seed")
    parser.add_argument("--checkpoint-sd", type=float, default=0.3, help="logit sd per checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decimals", type=int, default=None,
                        help="round probabilities to this many decimals (smaller files)")
    parser.add_argument("--replace", action="store_true",
                        help="replace stored runs of the same key that differ")
    parser.add_argument("--zhong-release", type=Path, default=None, metavar="DIR",
                        help="write Zhong et al.'s release layout under DIR instead of the store")
    parser.set_defaults(func_no_store=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    try:
        study = simulate(
            args.instances, sizes, args.pretrain_seeds, args.finetune_seeds, args.checkpoints,
            n_classes=args.classes, decaying_share=args.decaying_share,
            wrong_label_share=args.wrong_label_share, pretrain_sd=args.pretrain_sd,
            finetune_sd=args.finetune_sd, checkpoint_sd=args.checkpoint_sd, seed=args.seed,
            task=args.task, pair=args.pair, decimals=args.decimals,
        )
    except ValueError as exc:
        print(f"seedlab simulate: error: {exc}", file=sys.stderr)
        return 2
    if args.zhong_release is not None:
        folder = write_zhong_release(study, args.zhong_release)
        print(f"wrote the Zhong release layout of simulated task {study.task!r} to {folder}")
        return 0
    from seedlab.store import Store

    store = Store(args.home)
    summary = write_study(store, study, replace=args.replace)
    print(json.dumps({"task": study.task, "simulated": True, "home": str(store.home),
                      **summary}, indent=2))
    return 0
