"""seedlab at the scale of the released studies (issue 7): import, store queries,
statistics and pages, each against its baseline, in one run.

    .venv/bin/python -m benchmarks [--quick] [--scale X] [--keep] [--out FILE]

Builds a QQP-scale study with the simulator (79,497 instances x 5 sizes x 10 pretraining
seeds x 5 fine-tuning seeds x 4 checkpoints = 80M predictions; ``--quick``: a tenth of the
instances; ``--scale X``: that fraction), writes it as Zhong et al.'s release (1,000 TSV
files), and measures

1. import: ``import_zhong`` of the release into an empty store, in a fresh process: wall
   time, CPU seconds, predictions per second, peak memory (``ru_maxrss``);
2. store queries: the queries behind each page, cold (first call in a fresh process) and
   warm (best of the next calls), each against the numpy floor: the same result computed
   from the same data held in memory as dense arrays;
3. statistics: each ``seedlab.stats`` function the pages call, at full scale, against a
   numpy floor (one pass over its input) and, for the decomposition, agreement and
   Multi-Bootstrap, the loop implementations of ``benchmarks.stats_bench``;
4. pages: each page of the app rendered by AppTest in a fresh process, cold (its first
   render; the app's first run, the Overview, comes before it and is reported apart) and
   warm (the rerun with caches filled); then every page in one process for the app's
   peak memory.

Wall times on a shared machine depend on the load: the load average and CPU seconds are
printed beside them. Nothing is asserted about time; the targets of issue 7 are checked
and printed. Output: a Markdown table on stdout and JSON under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import stats_bench

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
QQP_INSTANCES = 79_497
SIZES = ["tiny", "mini", "small", "medium", "base"]
TASK = "simqqp"
MB = 2**20

# Targets of issue 7 (on the 2-core machine).
IMPORT_WALL_S = 120.0
MEMORY_MB = 4096.0
PAGE_WARM_S = 1.0
PAGE_COLD_S = 5.0
QUERY_RATIO = 3.0


def load() -> float:
    """The 1-minute load average."""
    return round(os.getloadavg()[0], 2)


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(value, wall seconds, process CPU seconds)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def child(step: str, limit_s: float, **args: Any) -> dict:
    """Run ``benchmarks.child`` in a fresh process and return its JSON (plus the load)."""
    before = load()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.child",
                           json.dumps({"step": step, **args})],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=limit_s,
                          check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark step {step} {args} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    result = json.loads(lines[-1])
    result["load"] = [before, load()]
    return result


def page_files() -> list[str]:
    """The pages ``app.py`` registers, in its order (those whose file exists)."""
    text = (REPO / "app.py").read_text()
    return [p for p in re.findall(r'"(pages/\w+\.py)"', text) if (REPO / p).exists()]


# ---------------------------------------------------------------------------------------
# Floors: the same results from the same data held in memory as dense numpy arrays.


def query_floors(data: dict[str, Any], sizes: list[str], instance: int
                 ) -> dict[str, Callable[[], Any]]:
    """Numpy equivalents of ``child.QUERIES``. ``data[size]`` is the simulator's
    ``SizeArrays`` (``correct``, ``p_correct``, ``pred``: ``(N, P, F, E)``)."""

    def dense(size: str, last: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = data[size]
        pick = (lambda x: x[..., -1]) if last else (lambda x: x)
        return (pick(a.correct).astype(np.float64), pick(a.p_correct).astype(np.float64),
                pick(a.pred).astype(np.int64))

    def accuracy() -> list[np.ndarray]:
        # (P, F) accuracy of every run at its last checkpoint, per size
        return [data[s].correct[..., -1].mean(axis=0) for s in sizes]

    def one_instance() -> pd.DataFrame:
        # The query returns a long table (one row per run and checkpoint, ten columns), so
        # its floor builds that table from the dense arrays: indexing three arrays alone
        # would leave out the work of the result itself.
        frames = []
        for s in sizes:
            a = data[s]
            correct, p_correct = a.correct[instance], a.p_correct[instance]  # (P, F, E)
            p_seed, f_seed, ckpt = np.indices(correct.shape).reshape(3, -1)
            p = p_correct.reshape(-1).astype(np.float32)
            frames.append(pd.DataFrame({
                "task": TASK, "size": s, "pretrain_seed": p_seed.astype(str),
                "finetune_seed": f_seed + 1, "checkpoint": (ckpt + 1) / 3,
                "instance_id": f"i{instance}", "pred": a.pred[instance].reshape(-1)
                .astype(np.int32), "correct": correct.reshape(-1), "p_correct": p,
                "probs": list(np.stack([1 - p, p], axis=1))}))
        return pd.concat(frames, ignore_index=True)

    return {
        "run_accuracy": accuracy,
        "arrays_last": lambda: dense(sizes[-1], True),
        "arrays_all": lambda: dense(sizes[-1], False),
        "arrays_last_every_size": lambda: [dense(s, True) for s in sizes],
        "arrays_decaying_pair": lambda: [dense(s, True) for s in (sizes[0], sizes[-1])],
        "instance_predictions": one_instance,
    }


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds of ``repeat`` calls."""
    runs = [timed(fn)[1:] for _ in range(max(1, repeat))]
    return min(runs)


# ---------------------------------------------------------------------------------------
# Statistics: each seedlab.stats function the pages call, on the simulated data.


def stats_section(data: dict[str, Any], labels: np.ndarray, sizes: list[str], nboot: int,
                  quick: bool) -> list[dict]:
    """Time the statistics at the study's scale. Loop baselines come from
    ``benchmarks.stats_bench`` (timed on a slice and extrapolated, as there)."""
    from seedlab import stats

    rows: list[dict] = []
    n = labels.shape[0]
    small, large = sizes[0], sizes[-1]

    def row(name: str, fn: Callable[[], Any], floor: Callable[[], Any], shape: Any,
            loop: dict | None = None) -> Any:
        value, wall, cpu = timed(fn)
        floor_wall, _ = best_of(floor, 2)
        rows.append({"name": name, "input": str(shape), "wall_s": wall, "cpu_s": cpu,
                     "floor_s": floor_wall, "ratio_floor": wall / floor_wall if floor_wall
                     else None, "loop": loop, "load": load()})
        return value

    # Bias and variance: the decomposition of every size with checkpoints (4-D), and the
    # bootstrap CIs of one size (the page's default of 500 replicates).
    x4 = {s: data[s].correct.astype(np.float64) for s in sizes}
    decs = row("decompose, every size, 4-D (N, P, F, E)",
               lambda: {s: stats.decompose(x4[s]) for s in sizes},
               lambda: [x4[s].mean(axis=(1, 2, 3)) for s in sizes], x4[large].shape)
    sample = min(n, 400)
    ref, loop_wall, _ = timed(lambda: stats_bench.decompose_loop(x4[large][:sample]))
    dec = decs[large]
    got = np.stack([dec.loss, dec.bias2, dec.var_pretrain, dec.var_finetune,
                    dec.var_checkpoint], axis=1)[:sample]
    rows[-1]["loop"] = {"wall_s": loop_wall * n / sample * len(sizes),
                        "note": f"timed on {sample} instances of one size, extrapolated",
                        "equal": bool(np.allclose(got, ref, rtol=0, atol=1e-12))}
    row("decomposition_ci, one size, 500 replicates",
        lambda: stats.decomposition_ci(dec, nboot=500, rng=0),
        lambda: np.stack(list(dec.components().values())).mean(axis=1), (n, 5))
    x4.clear()

    # Agreement: every run of every size at the last checkpoint.
    per_size = [stats.flatten_runs(data[s].pred[..., -1]) for s in sizes]
    runs = np.concatenate([r for r, _, _ in per_size])
    def matrices() -> tuple[np.ndarray, np.ndarray]:
        agree = stats.agreement_matrix(runs)
        return agree, stats.kappa_matrix(runs, agreement=agree)

    agree, kappa = row(f"agreement + kappa matrices, {runs.shape[0]} runs", matrices,
                       lambda: runs.mean(axis=1), runs.shape)
    all_pairs = [(r, s) for r in range(runs.shape[0]) for s in range(r + 1, runs.shape[0])]
    pairs = all_pairs[::max(1, len(all_pairs) // (300 if quick else 1500))]
    ref, loop_wall, _ = timed(lambda: stats_bench.agreement_loop(runs, pairs))
    rr, ss = np.array(pairs).T
    rows[-1]["loop"] = {"wall_s": loop_wall * len(all_pairs) / len(pairs),
                        "note": f"timed on {len(pairs)} of {len(all_pairs)} pairs, extrapolated",
                        "equal": bool(np.allclose(agree[rr, ss], ref[:, 0], atol=1e-12)
                                      and np.allclose(kappa[rr, ss], ref[:, 1], atol=1e-12))}

    # Significance: Multi-Bootstrap, smallest vs largest size, paired by pretraining seed.
    a_runs, a_seeds, a_fine = per_size[0]
    b_runs, b_seeds, b_fine = per_size[-1]
    preds = np.concatenate([a_runs, b_runs])
    seeds = np.concatenate([a_seeds, b_seeds])
    fine = np.concatenate([a_fine, b_fine])
    treatment = np.repeat([False, True], a_runs.shape[0])
    row(f"multibootstrap, {nboot} replicates, {preds.shape[0]} runs",
        lambda: stats.multibootstrap(preds, labels, seeds, treatment, nboot=nboot, rng=0,
                                     finetune_seeds=fine),
        lambda: (preds == labels).mean(axis=1), preds.shape)
    few = 5 if quick else 10
    check = stats.multibootstrap(preds, labels, seeds, treatment, nboot=few, rng=1)
    ref, loop_wall, _ = timed(lambda: stats_bench.multibootstrap_loop(preds, labels, seeds,
                                                                treatment, nboot=few, rng=1))
    rows[-1]["loop"] = {"wall_s": loop_wall * nboot / few,
                        "note": f"timed on {few} replicates, extrapolated",
                        "equal": bool(np.allclose(check["draws"]["delta"],
                                                  ref["draws"]["delta"], rtol=0, atol=1e-12))}

    # Decaying instances: bounds (0/1) and Benjamini-Hochberg (gold-label probability).
    cs, cl = (data[s].correct[..., -1].astype(np.float64) for s in (small, large))
    ps, pl = (data[s].p_correct[..., -1].astype(np.float64) for s in (small, large))
    row("decay_bounds, smallest vs largest", lambda: stats.decay_bounds(cs, cl),
        lambda: (cs.mean(axis=(1, 2)), cl.mean(axis=(1, 2))), cs.shape)
    row("bh_details, smallest vs largest", lambda: stats.bh_details(ps, pl),
        lambda: (ps.mean(axis=(1, 2)), pl.mean(axis=(1, 2))), ps.shape)

    # Data map of the largest size over every checkpoint.
    four = {"p": data[large].p_correct.astype(np.float64),
            "c": data[large].correct.astype(np.float64)}
    row("seed_data_map, one size, 4-D", lambda: stats.seed_data_map(four["p"], four["c"]),
        lambda: (four["p"].mean(axis=(1, 2, 3)), four["p"].std(axis=(1, 2, 3))),
        four["p"].shape)
    four.clear()

    # Label issues over every run of every size (last checkpoint).
    p_all = np.hstack([data[s].p_correct[..., -1].reshape(n, -1).astype(np.float64)
                       for s in sizes])
    pred_all = np.hstack([data[s].pred[..., -1].reshape(n, -1) for s in sizes])
    row(f"label_issues, {p_all.shape[1]} runs",
        lambda: stats.label_issues(p_all, pred_all, labels),
        lambda: p_all.mean(axis=1), p_all.shape)
    for r in rows:
        if r["loop"]:
            r["loop"]["ratio"] = r["loop"]["wall_s"] / r["wall_s"]
    return rows


# ---------------------------------------------------------------------------------------


def build_release(n: int, pretrain: int, finetune: int, checkpoints: int, sizes: list[str],
                  folder: Path) -> tuple[Any, dict]:
    """Simulate the study and write it as Zhong et al.'s release under ``folder``."""
    from seedlab.simulate import simulate, write_zhong_release

    study, sim_s, _ = timed(lambda: simulate(n, sizes, pretrain, finetune, checkpoints,
                                             task=TASK, seed=0))
    _, write_s, write_cpu = timed(lambda: write_zhong_release(study, folder))
    files = list((folder / TASK / "results").glob("*.tsv"))
    size = sum(p.stat().st_size for p in files) + (folder / TASK / "data.json").stat().st_size
    return study, {"simulate_s": sim_s, "write_s": write_s, "write_cpu_s": write_cpu,
                   "files": len(files), "bytes": size}


def targets(result: dict) -> list[dict]:
    """Issue 7's targets against the measurements (meaningful at scale 1)."""
    out = []

    def add(name: str, value: float | None, limit: float, unit: str) -> None:
        out.append({"target": name, "value": value, "limit": limit, "unit": unit,
                    "met": value is not None and value < limit})

    imp = result["import"]
    add("import wall time", imp["wall_s"], IMPORT_WALL_S, "s")
    add("import peak memory", imp["peak_mb"], MEMORY_MB, "MiB")
    for q in result["queries"]:
        add(f"query {q['name']} warm / floor", q["ratio_warm"], QUERY_RATIO, "x")
    for p in result["pages"]:
        add(f"page {p['page']} warm", p["warm_s"], PAGE_WARM_S, "s")
        add(f"page {p['page']} cold", p["cold_s"], PAGE_COLD_S, "s")
    if result.get("app"):
        add("app peak memory, every page in one process", result["app"]["peak_mb"],
            MEMORY_MB, "MiB")
    return out


def secs(value: float | None) -> str:
    """Seconds as text: milliseconds below 0.1 s."""
    if value is None:
        return "-"
    return f"{value * 1000:.2f} ms" if value < 0.1 else f"{value:.2f} s"


def markdown(result: dict) -> str:
    """The result as Markdown tables."""
    cfg, env = result["config"], result["environment"]
    lines = [
        (f"Data: {cfg['instances']:,} instances x {len(cfg['sizes'])} sizes x"
        f" {cfg['pretrain_seeds']} pretraining x {cfg['finetune_seeds']} fine-tuning seeds x"
        f" {cfg['checkpoints']} checkpoints = {cfg['predictions']:,} predictions"
        f" (scale {cfg['scale']:g}); {result['release']['files']} TSV files,"
        f" {result['release']['bytes'] / MB:,.0f} MiB."),
        (f"Machine: {env['cpus']} cores, Python {env['python']}; load average"
        f" {env['load_start']} at the start, {env['load_end']} at the end. {env['date']}."),
        "",
        "**Import** (fresh process)",
        "",
        "| wall | CPU | predictions/s | peak memory | load |",
        "|---:|---:|---:|---:|---|",
    ]
    imp = result["import"]
    lines.append(f"| {secs(imp['wall_s'])} | {secs(imp['cpu_s'])} |"
                 f" {imp['predictions_per_s']:,.0f} | {imp['peak_mb']:,.0f} MiB |"
                 f" {imp['load'][0]}-{imp['load'][1]} |")
    lines += ["", ("**Store queries** (cold: first call in a fresh process; warm: best of the"
              " next calls; floor: the same result from dense numpy arrays in memory)"), "",
              ("| query | shape | cold | (CPU) | warm | (CPU) | floor | warm/floor |"
              " peak memory |"), "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for q in result["queries"]:
        lines.append(f"| {q['name']} | {q['shape']} | {secs(q['cold_s'])} |"
                     f" {secs(q['cold_cpu_s'])} | {secs(q['warm_s'])} | {secs(q['warm_cpu_s'])}"
                     f" | {secs(q['floor_s'])} | {q['ratio_warm']:.1f}x |"
                     f" {q['peak_mb']:,.0f} MiB |")
    lines += ["", ("**Statistics** (in memory; floor: one numpy pass over the input; loop:"
              " the straightforward implementation, timed on a slice and extrapolated)"), "",
              ("| function | input | wall | (CPU) | floor | /floor | loop | loop/vectorised"
              " | equal |"), "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for s in result["stats"]:
        loop = s["loop"]
        loop_text = (f"{secs(loop['wall_s'])} | {loop['ratio']:.0f}x | {loop['equal']}"
                     if loop else "- | - | -")
        lines.append(f"| {s['name']} | {s['input']} | {secs(s['wall_s'])} | {secs(s['cpu_s'])}"
                     f" | {secs(s['floor_s'])} | {s['ratio_floor']:.0f}x | {loop_text} |")
    lines += ["", ("**Pages** (AppTest, fresh process per page; first run: the app's first"
              " run, Overview, before the page; cold: the page's first render; warm: its"
              " rerun)"), "",
              "| page | first run | cold | (CPU) | warm | (CPU) | peak memory | exceptions |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for p in result["pages"]:
        lines.append(f"| {p['page']} | {secs(p['first_run_s'])} | {secs(p['cold_s'])} |"
                     f" {secs(p['cold_cpu_s'])} | {secs(p['warm_s'])} | {secs(p['warm_cpu_s'])}"
                     f" | {p['peak_mb']:,.0f} MiB | {len(p['exceptions'])} |")
    if result.get("app"):
        app = result["app"]
        lines += ["", (f"Every page in one process: {app['wall_s']:.1f} s, peak memory"
                  f" {app['peak_mb']:,.0f} MiB, {len(app['exceptions'])} exceptions.")]
    lines += ["", "**Targets** (issue 7)" + ("" if cfg["scale"] >= 1 else
              f" - indicative only at scale {cfg['scale']:g}"), "",
              "| target | value | limit | met |", "|---|---:|---:|---|"]
    for t in result["targets"]:
        value = "-" if t["value"] is None else f"{t['value']:,.2f} {t['unit']}"
        lines.append(f"| {t['target']} | {value} | {t['limit']:g} {t['unit']} |"
                     f" {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of QQP's instances")
    parser.add_argument("--scale", type=float, default=None,
                        help="fraction of QQP's 79,497 instances (default 1; --quick 0.1)")
    parser.add_argument("--pretrain-seeds", type=int, default=10)
    parser.add_argument("--finetune-seeds", type=int, default=5)
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated, smallest"
                        " first")
    parser.add_argument("--nboot", type=int, default=1000,
                        help="Multi-Bootstrap replicates (the Significance page's default)")
    parser.add_argument("--pages", default=None,
                        help="comma-separated page files to render (default: every page)")
    parser.add_argument("--repeat", type=int, default=2, help="warm repetitions per query")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the release and the store go (a temporary folder in it)")
    parser.add_argument("--keep", action="store_true", help="keep the release and the store")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default benchmarks/results/scale-<time>.json)")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds allowed to each measured step")
    return parser.parse_args(argv)


def save(result: dict, out: Path | None) -> None:
    """Write the result so far (each section is saved as it finishes)."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, default=str))


def run(args: argparse.Namespace, out: Path | None = None) -> dict:
    """Run every section and return the result (see the module docstring); with ``out``,
    the result so far is written there after each section."""
    scale = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)
    n = max(20, round(QQP_INSTANCES * scale))
    sizes = [s for s in args.sizes.split(",") if s]
    pages = args.pages.split(",") if args.pages else page_files()
    work = Path(tempfile.mkdtemp(prefix="seedlab-bench-", dir=args.workdir))
    home, release = work / "home", work / "release"
    result: dict[str, Any] = {
        "config": {"scale": scale, "instances": n, "sizes": sizes,
                   "pretrain_seeds": args.pretrain_seeds, "finetune_seeds": args.finetune_seeds,
                   "checkpoints": args.checkpoints, "nboot": args.nboot,
                   "predictions": n * len(sizes) * args.pretrain_seeds * args.finetune_seeds
                   * args.checkpoints, "workdir": str(work)},
        "environment": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_start": load(),
                        "date": datetime.now(UTC).isoformat(timespec="seconds")},
    }
    try:
        say = (lambda text: print(text, file=sys.stderr, flush=True))
        say(f"building {result['config']['predictions']:,} predictions in {work}")
        study, result["release"] = build_release(n, args.pretrain_seeds, args.finetune_seeds,
                                                 args.checkpoints, sizes, release)
        say(f"release written in {result['release']['write_s']:.0f} s; importing")
        result["import"] = child("import", args.timeout, home=str(home), release=str(release))
        save(result, out)
        shutil.rmtree(release, ignore_errors=True)

        say("store queries")
        data = {s: study.arrays(s) for s in sizes}
        instance = n // 2
        floors = query_floors(data, sizes, instance)
        from benchmarks.child import QUERIES

        queries = []
        for name in QUERIES:
            q = child("query", args.timeout, home=str(home), task=TASK, sizes=sizes,
                      instance=str(study.instance_ids[instance]), name=name,
                      repeat=args.repeat)
            q["floor_s"], q["floor_cpu_s"] = best_of(floors[name], 3)
            q["ratio_cold"] = q["cold_s"] / q["floor_s"]
            q["ratio_warm"] = q["warm_s"] / q["floor_s"]
            queries.append({"name": name, **q})
        result["queries"] = queries
        save(result, out)

        say("statistics")
        result["stats"] = stats_section(data, study.labels.astype(np.int64), sizes,
                                        args.nboot, scale < 0.5)
        save(result, out)
        del data, floors
        study = None

        say("pages")
        result["pages"] = []
        for page in pages:
            say(f"  {page}")
            p = child("page", args.timeout, home=str(home), page=page, timeout=args.timeout)
            result["pages"].append({"page": page, **p})
            save(result, out)
        result["app"] = child("app", args.timeout, home=str(home), pages=pages,
                              timeout=args.timeout)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result["environment"]["load_end"] = load()
    result["environment"]["harness_peak_mb"] = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result["targets"] = targets(result)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or RESULTS / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    result = run(args, out)
    save(result, out)
    print(markdown(result))
    print(f"\nJSON: {out}")
    return 0
