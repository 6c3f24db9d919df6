"""The fine-tuning throughput benchmark runs both paths and reports what it measured (on
the tiny BERT, so that it takes seconds; the real run uses the installed MiniLM)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate")

REPO = Path(__file__).resolve().parents[1]


def test_trainer_bench_runs_both_paths_alternating_and_prints_the_ratio(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEDLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "trainer", "--model", "tiny-bert",
                           "--train", "96", "--eval", "40", "--rounds", "2", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("round ")]
    assert [line.split()[:3] for line in lines] == [
        ["round", "1", "seedlab"], ["round", "1", "hf-trainer"],
        ["round", "2", "hf-trainer"], ["round", "2", "seedlab"]]
    assert "seedlab / Trainer: " in proc.stdout and "| seedlab |" in proc.stdout
    result = json.loads(out.read_text())
    assert result["n_train"] == 96 and result["n_eval"] == 40
    assert {r["path"] for r in result["runs"]} == {"seedlab", "hf-trainer"}
    for run in result["runs"]:
        assert run["steps"] == 3 and run["samples_per_s"] > 0 and 0 <= run["accuracy"] <= 1
        # 96 snippets in batches of 32: steps 2 and 3, 64 rows, each at most 128 tokens wide.
        assert 64 <= run["padded_tokens"] <= 64 * 128
    ratio = (result["summary"]["seedlab"]["samples_per_s"]
             / result["summary"]["hf-trainer"]["samples_per_s"])
    assert result["ratio"] == pytest.approx(ratio)
    # Both paths train the same model on the same data: the same seed gives each path the
    # same result from one round to the next.
    for path in ("seedlab", "hf-trainer"):
        accuracies = {r["accuracy"] for r in result["runs"] if r["path"] == path}
        assert len(accuracies) == 1
