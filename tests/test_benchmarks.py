"""Smoke test of the scale benchmark (``python -m benchmarks``) at a tiny scale: every
section is there, the counts match the data that was built, the numbers are sane and the
pages render without exceptions. Nothing is asserted about time."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = ["pages/overview.py", "pages/agreement.py"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "result.json"
    work = tmp_path_factory.mktemp("work")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--scale", "0.002", "--pretrain-seeds", "2",
         "--finetune-seeds", "2", "--sizes", "mini,base", "--nboot", "50",
         "--pages", ",".join(PAGES), "--out", str(out), "--workdir", str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout, work


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_every_section_and_the_counts(run):
    result, _, _ = run
    assert {"config", "environment", "release", "import", "queries", "stats", "pages", "app",
            "targets"} <= set(result)
    n = round(79_497 * 0.002)
    cfg = result["config"]
    assert cfg["instances"] == n == 159
    assert cfg["predictions"] == n * 2 * 2 * 2 * 4
    # one TSV per size x pretraining seed x fine-tuning seed x checkpoint
    assert result["release"]["files"] == 2 * 2 * 2 * 4
    imp = result["import"]
    assert imp["files"] == 32 and imp["runs_added"] == 8
    assert imp["predictions"] == cfg["predictions"]
    assert positive(imp["wall_s"]) and positive(imp["predictions_per_s"])
    assert 50 < imp["peak_mb"] < 4096


def test_queries_return_the_shapes_of_the_data(run):
    result, _, _ = run
    queries = {q["name"]: q for q in result["queries"]}
    assert set(queries) == {"run_accuracy", "arrays_last", "arrays_all",
                            "arrays_last_every_size", "arrays_decaying_pair",
                            "instance_predictions"}
    assert queries["arrays_last"]["shape"] == [159, 2, 2]
    assert queries["arrays_all"]["shape"] == [159, 2, 2, 4]
    assert queries["arrays_last_every_size"]["shape"] == [[159, 2, 2], [159, 2, 2]]
    # 2 sizes x 4 runs, one row each at the last checkpoint
    assert queries["run_accuracy"]["shape"][0] == 8
    # one instance: every run (8) at every checkpoint (4)
    assert queries["instance_predictions"]["shape"][0] == 32
    for q in queries.values():
        for key in ("cold_s", "warm_s", "floor_s", "ratio_warm", "peak_mb"):
            assert positive(q[key]), (q["name"], key, q[key])
        assert q["ratio_warm"] == pytest.approx(q["warm_s"] / q["floor_s"])


def test_statistics_match_their_loops(run):
    result, _, _ = run
    names = [s["name"] for s in result["stats"]]
    for expected in ("decompose", "decomposition_ci", "agreement + kappa", "multibootstrap",
                     "decay_bounds", "bh_details", "seed_data_map", "label_issues"):
        assert any(name.startswith(expected) for name in names), expected
    loops = [s for s in result["stats"] if s["loop"]]
    assert len(loops) == 3
    for s in loops:
        assert s["loop"]["equal"] is True, s["name"]
        assert positive(s["loop"]["wall_s"])
    for s in result["stats"]:
        assert s["wall_s"] >= 0 and positive(s["floor_s"])


def test_pages_render_and_targets_are_listed(run):
    result, stdout, work = run
    assert [p["page"] for p in result["pages"]] == PAGES
    for page in result["pages"]:
        assert page["exceptions"] == [], page
        assert page["n_elements"] > 0
        assert positive(page["cold_s"]) and positive(page["warm_s"])
    assert result["app"]["pages"] == len(PAGES) and result["app"]["exceptions"] == []
    kinds = {t["target"].split(" ")[0] for t in result["targets"]}
    assert kinds == {"import", "query", "page", "app"}
    for t in result["targets"]:
        assert t["met"] == (t["value"] is not None and t["value"] < t["limit"])
    # the printed table has every section, and the work folder was cleaned up
    for heading in ("**Import**", "**Store queries**", "**Statistics**", "**Pages**",
                    "**Targets**"):
        assert heading in stdout
    assert list(work.iterdir()) == []
