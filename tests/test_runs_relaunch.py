"""'Launch missing' on the Overview: missing coverage cells become jobs that copy the recipe
of the seedlab-made run beside them; the coverage grid shows queued/failed jobs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from seedlab.runs import plan, queue, spec
from seedlab.store import RunData
from seedlab.ui.data import coverage, job_table


def _register(store, job_id: int | None, size: str, p: str, f: int) -> None:
    ids = ["a", "b", "c"]
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    table = pa.table({"checkpoint": [1.0] * 3, "instance_id": ids, "pred": probs.argmax(1),
                      "correct": [True, True, False], "p_correct": [0.8, 0.7, 0.4],
                      "probs": list(probs)})
    provenance = {"job_id": job_id} if job_id is not None else {}
    with store.transaction("run", "test") as tx:
        tx.set_task("rt", ["neg", "pos"])
        tx.add_instances("rt", pd.DataFrame({"instance_id": ids, "label": ["neg", "pos", "pos"]}))
        tx.add_run(RunData("rt", size, p, f, table,
                           source="seedlab-run" if job_id is not None else "import",
                           provenance=provenance))


def test_missing_cells_copy_the_recipe_of_their_neighbour(store):
    recipe = spec.JobSpec(task="rt", model="/models/p0", size="tiny", pretrain_seed="0",
                          finetune_seed=1, checkpoints=(0.5, 1.0), epochs=1.0,
                          learning_rate=3e-4, max_seq_length=32, data="/data/rt.csv")
    [job_id] = queue.submit(store, [recipe])
    _register(store, job_id, "tiny", "0", 1)      # made by seedlab from that job
    _register(store, None, "tiny", "1", 1)        # imported: no recipe

    jobs, reasons = plan.relaunch_jobs(store, "rt", [("tiny", "0", 2), ("tiny", "1", 2)])
    assert len(jobs) == 1 and len(reasons) == 1
    job = jobs[0]
    assert (job.model, job.size, job.pretrain_seed, job.finetune_seed) == ("/models/p0", "tiny",
                                                                           "0", 2)
    assert (job.learning_rate, job.checkpoints, job.data) == (3e-4, (0.5, 1.0), "/data/rt.csv")
    assert "pretraining seed 1" in reasons[0] and "fine-tuning seed 2" in reasons[0]


def test_coverage_shows_queued_and_failed_jobs(store):
    _register(store, None, "tiny", "0", 1)
    failing = spec.JobSpec(task="rt", model="m", size="tiny", pretrain_seed="1", finetune_seed=1)
    [bad] = queue.submit(store, [failing])
    claimed = queue.claim(store, "w1")
    assert claimed is not None and claimed.id == bad
    queue.fail(store, bad, "w1", "model folder missing")
    waiting = spec.JobSpec(task="rt", model="m", size="tiny", pretrain_seed="0", finetune_seed=2)
    queue.submit(store, [waiting])
    dropped = spec.JobSpec(task="rt", model="m", size="tiny", pretrain_seed="0", finetune_seed=3)
    [cancelled] = queue.submit(store, [dropped])
    queue.cancel(store, cancelled)

    jobs = job_table(store, "rt")
    assert sorted(map(tuple, jobs[["pretrain_seed", "finetune_seed", "status"]].astype(str)
                      .to_numpy())) == [("0", "2", "queued"), ("1", "1", "failed")]
    grid = coverage(store.runs(task="rt"), jobs).set_index(
        ["pretrain_seed", "finetune_seed"])["status"]
    assert grid[("0", 1)] == "present"
    assert grid[("1", 1)] == "failed"
    assert grid[("0", 2)] == "queued"
    assert grid[("1", 2)] == "missing"
    assert 3 not in grid.index.get_level_values("finetune_seed")  # cancelled: no cell
