"""Speed of seedlab.stats at the scale of the released studies (QQP, MultiBERTs layout).

Builds in memory, with numpy: 79,497 instances, 5 sizes, 10 pretraining seeds, 5
fine-tuning seeds and 4 checkpoints, then times

1. the bias-variance decomposition of all five sizes (4-D, with checkpoints),
2. the agreement and kappa matrices of the 250 runs at the last checkpoint,
3. a 1,000-replicate Multi-Bootstrap between two sizes (paired, 100 runs),

each against a straightforward loop implementation measured in the same run (one instance,
one pair, one replicate and one run at a time, the way the original code works), and
checks that both give equal results. Where the loop would take minutes it is timed on a
slice (instances, pairs or replicates) and extrapolated linearly; the output says so.
Nothing is asserted about time: it prints.

    .venv/bin/python -m benchmarks.stats_bench [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from seedlab import stats
from tests.stats_oracles import multibootstrap_loop

SIZES = ("tiny", "mini", "small", "medium", "base")


def build(n: int, n_pre: int, n_fine: int, n_ckpt: int, seed: int = 0) -> dict:
    """Correctness (N, P, F, E) int8 per size, with instance difficulty and seed effects,
    plus predictions and gold labels of a binary task."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 1.5, n).astype(np.float32)
    labels = rng.integers(0, 2, n).astype(np.int8)
    out = {"labels": labels, "correct": {}, "pred": {}}
    for k, size in enumerate(SIZES):
        logit = (difficulty[:, None, None, None] + 0.4 * k
                 + rng.normal(0, 0.3, (1, n_pre, 1, 1)).astype(np.float32)
                 + rng.normal(0, 0.3, (1, n_pre, n_fine, 1)).astype(np.float32)
                 + np.linspace(-0.3, 0, n_ckpt, dtype=np.float32)[None, None, None, :])
        u = rng.random(logit.shape, dtype=np.float32)
        correct = (u < 1 / (1 + np.exp(-logit))).astype(np.int8)
        out["correct"][size] = correct
        out["pred"][size] = np.where(correct == 1, labels[:, None, None, None],
                                     1 - labels[:, None, None, None]).astype(np.int8)
    return out


CPU_SECONDS: list[float] = []


def timed(fn, *args, **kwargs):
    """``(value, wall seconds)``; the process CPU seconds go to ``CPU_SECONDS`` (on a shared
    machine the wall time depends on the load, the CPU time much less)."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn(*args, **kwargs)
    CPU_SECONDS.append(time.process_time() - cpu)
    return value, time.perf_counter() - start


# ---------------------------------------------------------------------------------------
# Straightforward loop implementations (the baseline)


def decompose_loop(c: np.ndarray) -> np.ndarray:
    """Per-instance loop over statistics.md section 1 (4-D); returns (N, 5) terms."""
    out = np.empty((c.shape[0], 5))
    for i, x in enumerate(c):
        n_pre, n_fine, n_ckpt = x.shape
        loss = np.mean((1 - x) ** 2)
        s2e = np.array([[np.var(x[p, f], ddof=1) for f in range(n_fine)]
                        for p in range(n_pre)])
        vc = s2e.mean()
        vf_p = np.array([np.var([x[p, f].mean() for f in range(n_fine)], ddof=1)
                         - s2e[p].mean() / n_ckpt for p in range(n_pre)])
        vf = vf_p.mean()
        cbar = [x[p].mean() for p in range(n_pre)]
        vp = np.var(cbar, ddof=1) - np.mean([s2e[p].mean() / (n_ckpt * n_fine)
                                             + vf_p[p] / n_fine for p in range(n_pre)])
        out[i] = (loss, loss - vp - vf - vc, vp, vf, vc)
    return out


def agreement_loop(preds: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
    """Agreement and Cohen's kappa pair by pair; returns (len(pairs), 2)."""
    out = np.empty((len(pairs), 2))
    classes = np.unique(preds)
    for k, (r, s) in enumerate(pairs):
        a, b = preds[r], preds[s]
        p_o = np.mean(a == b)
        p_e = sum(np.mean(a == c) * np.mean(b == c) for c in classes)
        out[k] = (p_o, (p_o - p_e) / (1 - p_e))
    return out


# ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a tenth of the instances and 200 replicates (a smoke run)")
    args = parser.parse_args()
    n = 7_950 if args.quick else 79_497
    nboot = 200 if args.quick else 1000
    n_pre, n_fine, n_ckpt = 10, 5, 4
    data, build_s = timed(build, n, n_pre, n_fine, n_ckpt)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"data: {n} instances x {len(SIZES)} sizes x {n_pre} pretraining x {n_fine}"
          f" fine-tuning seeds x {n_ckpt} checkpoints (int8, built in {build_s:.1f} s)")
    rows = []

    # 1. Decomposition of all five sizes.
    def all_sizes():
        return {size: stats.decompose(data["correct"][size]) for size in SIZES}

    decs, fast_s = timed(all_sizes)
    cpu_s = [CPU_SECONDS[-1]]
    sample = min(n, 400)
    ref, loop_part = timed(decompose_loop, data["correct"]["base"][:sample].astype(float))
    loop_s = loop_part * n / sample * len(SIZES)
    dec = decs["base"]
    got = np.stack([dec.loss, dec.bias2, dec.var_pretrain, dec.var_finetune,
                    dec.var_checkpoint], axis=1)[:sample]
    equal = np.allclose(got, ref, rtol=0, atol=1e-12)
    rows.append(("decomposition, 5 sizes, 4-D", fast_s, loop_s,
                 (f"loop timed on {sample} instances of one size, x {n // sample}"
                 f" x {len(SIZES)} sizes"), equal))

    # 2. Agreement and kappa matrices of the 250 runs (5 sizes x 50) at the last checkpoint.
    per_size = [stats.flatten_runs(data["pred"][size][..., -1]) for size in SIZES]
    runs = np.concatenate([r for r, _, _ in per_size])
    pre = np.concatenate([p + 100 * k for k, (_, p, _) in enumerate(per_size)])
    fine = np.concatenate([f for _, _, f in per_size])

    def matrices():
        agree = stats.agreement_matrix(runs)
        return agree, stats.kappa_matrix(runs, agreement=agree)

    (agree, kappa), fast_s = timed(matrices)
    cpu_s.append(CPU_SECONDS[-1])
    n_runs = runs.shape[0]
    all_pairs = [(r, s) for r in range(n_runs) for s in range(r + 1, n_runs)]
    step = max(1, len(all_pairs) // 1500)
    pairs = all_pairs[::step]
    ref, loop_part = timed(agreement_loop, runs, pairs)
    loop_s = loop_part * len(all_pairs) / len(pairs)
    rr, ss = np.array(pairs).T
    equal = (np.allclose(agree[rr, ss], ref[:, 0], atol=1e-12)
             and np.allclose(kappa[rr, ss], ref[:, 1], atol=1e-12))
    summary = stats.agreement_summary(agree, pre, fine)
    rows.append((f"agreement + kappa, {n_runs} runs", fast_s, loop_s,
                 f"loop timed on {len(pairs)} of {len(all_pairs)} pairs, extrapolated", equal))

    # 3. Multi-Bootstrap between two sizes, paired by pretraining seed, 1,000 replicates.
    small, seeds_small, fine_small = per_size[SIZES.index("small")]
    large, _, _ = per_size[SIZES.index("base")]
    preds = np.concatenate([small, large])
    seeds = np.concatenate([seeds_small, seeds_small])
    finetune = np.concatenate([fine_small, fine_small])
    treatment = np.repeat([False, True], small.shape[0])
    labels = data["labels"]
    result, fast_s = timed(stats.multibootstrap, preds, labels, seeds, treatment,
                           nboot=nboot, rng=0, finetune_seeds=finetune)
    cpu_s.append(CPU_SECONDS[-1])
    few = 10 if args.quick else 20
    check_fast = stats.multibootstrap(preds, labels, seeds, treatment, nboot=few, rng=1)
    check_loop, loop_part = timed(multibootstrap_loop, preds, labels, seeds, treatment,
                                  nboot=few, rng=1)
    loop_s = loop_part * nboot / few
    equal = np.allclose(check_fast["draws"]["delta"], check_loop["draws"]["delta"],
                        rtol=0, atol=1e-12)
    rows.append((f"Multi-Bootstrap, {nboot} replicates, {preds.shape[0]} runs", fast_s,
                 loop_s, (f"loop timed on {few} replicates, x {nboot // few}; equality"
                 f" checked on those {few} (same seed)"), equal))

    print()
    print(f"{'analysis':44s} {'vectorised':>11s} {'(cpu)':>8s} {'loop':>10s} {'ratio':>7s}"
          "  equal")
    for (name, fast, loop, note, eq), cpu in zip(rows, cpu_s):
        print(f"{name:44s} {fast:10.3f}s {cpu:7.2f}s {loop:9.1f}s {loop / fast:6.0f}x  {eq}")
        print(f"    ({note})")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print()
    print(f"decomposition (base): {dec.summary()}")
    print(f"agreement (pretraining seeds of different sizes count as different):"
          f" same pretraining seed {summary['same_seed']['mean']:.4f},"
          f" different {summary['different_seed']['mean']:.4f}")
    print(f"Multi-Bootstrap delta (base - small): {result['delta']} (seed {result['seed']})")


if __name__ == "__main__":
    main()
