"""One measured step of the scale benchmark, run in its own process so that its peak memory
(``ru_maxrss``) and its cold start belong to it alone.

    python -m benchmarks.child '{"step": "import", ...}'

Prints one JSON object on the last line of stdout. Steps:

* ``import``: ``import_zhong(Store(home), release)``.
* ``query``: one store query (``name`` from :data:`QUERIES`), the first call (cold: fresh
  process, new ``Store``, new DuckDB connection) then ``repeat`` more calls (warm).
* ``page``: one page of the app with AppTest: the app's first run (Overview), then the page
  (cold), then the page again (warm, caches filled).
* ``app``: every page in turn in one process (the app's peak memory with all caches full).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _maxrss_mb() -> float:
    """Peak resident memory of this process image in MiB: ``VmHWM`` of /proc/self/status.

    Not ``ru_maxrss``: Linux carries the pre-exec high-water mark over ``execve``, so a
    child started by a parent holding 2 GB of arrays would report the parent's 2 GB.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mb() -> float:
    """Current resident memory of this process in MiB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(value, wall seconds, process CPU seconds)``; CPU counts every thread (DuckDB)."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


# ---------------------------------------------------------------------------------------
# Import


def step_import(home: str, release: str) -> dict:
    from seedlab.importers.zhong import import_zhong
    from seedlab.store import Store

    base = _rss_mb()
    store = Store(home)
    summary, wall, cpu = _timed(lambda: import_zhong(store, release))
    preds = store.info()["totals"]["predictions"]
    files = sum(1 for _ in Path(release).glob("*/results/*.tsv"))
    return {"wall_s": wall, "cpu_s": cpu, "peak_mb": _maxrss_mb(), "base_mb": base,
            "predictions": preds, "files": files, "runs_added": summary["runs_added"],
            "predictions_per_s": preds / wall if wall else None}


# ---------------------------------------------------------------------------------------
# Store queries


def _queries(store: Any, task: str, sizes: list[str], instance: str) -> dict[str, Callable]:
    small, large = sizes[0], sizes[-1]
    return {
        # Overview: per-size accuracy of every run at its last checkpoint.
        "run_accuracy": lambda: store.run_accuracy(task, checkpoint="last"),
        # Bias and variance (last checkpoint), data map, significance: one size, (N, P, F).
        "arrays_last": lambda: store.arrays(task, large, checkpoint="last"),
        # Bias and variance with checkpoints, data map over checkpoints: (N, P, F, E).
        "arrays_all": lambda: store.arrays(task, large, checkpoint="all"),
        # Agreement and label issues: every size at the last checkpoint.
        "arrays_last_every_size": lambda: [store.arrays(task, s, checkpoint="last")
                                           for s in sizes],
        # Decaying instances: the smallest and the largest size.
        "arrays_decaying_pair": lambda: [store.arrays(task, s, checkpoint="last")
                                         for s in (small, large)],
        # Annotate: every prediction of one instance.
        "instance_predictions": lambda: store.predictions(task=task, instance_id=instance),
    }


QUERIES = ("run_accuracy", "arrays_last", "arrays_all", "arrays_last_every_size",
           "arrays_decaying_pair", "instance_predictions")


def _shape(value: Any) -> Any:
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if hasattr(value, "correct"):
        return list(value.correct.shape)
    return list(getattr(value, "shape", ()))


def step_query(home: str, task: str, sizes: list[str], instance: str, name: str,
               repeat: int) -> dict:
    from seedlab.store import Store

    base = _rss_mb()
    store = Store(home, create=False)
    fn = _queries(store, task, sizes, instance)[name]
    value, cold, cold_cpu = _timed(fn)
    shape = _shape(value)
    del value
    warm = [_timed(fn)[1:] for _ in range(repeat)]
    best = min(warm) if warm else (None, None)
    return {"cold_s": cold, "cold_cpu_s": cold_cpu, "warm_s": best[0], "warm_cpu_s": best[1],
            "shape": shape, "peak_mb": _maxrss_mb(), "base_mb": base}


# ---------------------------------------------------------------------------------------
# Pages


def navigation_only() -> None:
    """AppTest routes through ``app.py``'s navigation, as a warm server does."""
    from seedlab.ui.frame import route_app_tests_through_navigation

    route_app_tests_through_navigation()


def _app(home: str, timeout: float) -> Any:
    from streamlit.testing.v1 import AppTest

    navigation_only()
    os.environ["SEEDLAB_HOME"] = home
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=timeout)


def _problems(at: Any) -> list[str]:
    return [str(getattr(e, "message", e))[:300] for e in at.exception]


def step_page(home: str, page: str, timeout: float) -> dict:
    base = _rss_mb()
    at = _app(home, timeout)
    _, first, first_cpu = _timed(at.run)
    out: dict[str, Any] = {"first_run_s": first, "first_run_cpu_s": first_cpu}
    if page != "pages/overview.py":
        at.switch_page(page)
        _, cold, cold_cpu = _timed(at.run)
    else:
        cold, cold_cpu = first, first_cpu
    errors = _problems(at)
    _, warm, warm_cpu = _timed(at.run)
    errors += _problems(at)
    out.update(cold_s=cold, cold_cpu_s=cold_cpu, warm_s=warm, warm_cpu_s=warm_cpu,
               exceptions=errors, n_elements=len(list(at.main)), peak_mb=_maxrss_mb(),
               base_mb=base)
    return out


def step_app(home: str, pages: list[str], timeout: float) -> dict:
    base = _rss_mb()
    at = _app(home, timeout)
    _, wall, cpu = _timed(at.run)
    errors = _problems(at)
    for page in pages:
        at.switch_page(page)
        _, w, c = _timed(at.run)
        wall, cpu = wall + w, cpu + c
        errors += _problems(at)
    return {"wall_s": wall, "cpu_s": cpu, "pages": len(pages), "exceptions": errors,
            "peak_mb": _maxrss_mb(), "base_mb": base}


STEPS = {"import": step_import, "query": step_query, "page": step_page, "app": step_app}


def main() -> None:
    args = json.loads(sys.argv[1])
    step = STEPS[args.pop("step")]
    result = step(**args)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
