"""seedlab.annotate on data small enough to check by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from seedlab import annotate as an
from seedlab import stats
from seedlab.errors import InputError, StoreError
from seedlab.store import RunData, Store

IDS = ["i0", "i1", "i2", "i3", "i4", "i5"]
# correctness per instance for each (pretraining seed, fine-tuning seed) run, 2 x 2 runs.
# small: accuracies 1, 1, .5, .5, 0, 1 ; large: 0, .5, .5, 1, 0, .75
SMALL = {("a", 1): [1, 1, 1, 0, 0, 1], ("a", 2): [1, 1, 0, 1, 0, 1],
         ("b", 1): [1, 1, 1, 0, 0, 1], ("b", 2): [1, 1, 0, 1, 0, 1]}
LARGE = {("a", 1): [0, 1, 1, 1, 0, 1], ("a", 2): [0, 0, 0, 1, 0, 1],
         ("b", 1): [0, 1, 1, 1, 0, 0], ("b", 2): [0, 0, 0, 1, 0, 1]}


def run_table(correct: list[int]) -> pa.Table:
    n = len(correct)
    return pa.table({
        "checkpoint": [1.0] * n,
        "instance_id": IDS,
        "pred": [0 if c else 1 for c in correct],  # gold label is always "yes" (index 0)
        "correct": [bool(c) for c in correct],
        "p_correct": [0.9 if c else 0.1 for c in correct],
        "probs": [[0.9, 0.1] if c else [0.1, 0.9] for c in correct],
    })


@pytest.fixture
def toy(store: Store) -> Store:
    instances = pd.DataFrame({
        "instance_id": IDS, "split": ["dev"] * 6, "guid": IDS,
        "text_a": [f"premise {i}" for i in range(6)], "text_b": [f"hyp, \"{i}\"" for i in range(6)],
        "label": ["yes"] * 6,
        "group": ["treatment", "control", "treatment", "control", "control", "control"],
    })
    with store.transaction("test", "toy") as tx:
        tx.set_task("toy", ["yes", "no"])
        tx.add_instances("toy", instances)
        for size, runs in (("small", SMALL), ("large", LARGE)):
            for (p, f), correct in runs.items():
                tx.add_run(RunData("toy", size, p, f, run_table(correct)))
    return store


# -- which instances to read -----------------------------------------------------------


def test_instance_accuracy_and_decay(toy: Store):
    acc = an.instance_accuracy(toy, "toy", ["small", "large", "huge"])
    assert list(acc.columns) == ["small", "large"]  # "huge" has no runs and is left out
    np.testing.assert_allclose(acc.loc[IDS, "small"], [1, 1, .5, .5, 0, 1])
    np.testing.assert_allclose(acc.loc[IDS, "large"], [0, .5, .5, 1, 0, .75])
    decay = an.decay_table(acc, "small", "large")
    assert decay.index[:3].tolist() == ["i0", "i1", "i5"]  # -1, -.5, -.25
    np.testing.assert_allclose(decay["decay"].iloc[:3], [-1, -.5, -.25])
    # one pretraining seed only: i5 is then right in every "a" run of both sizes
    acc_a = an.instance_accuracy(toy, "toy", ["small", "large"], pretrain_seeds=["a"])
    assert acc_a.loc["i5", "large"] == 1.0
    with pytest.raises(KeyError, match="huge"):
        an.decay_table(acc, "small", "huge")


def test_focused_queue_is_most_decaying_first(toy: Store):
    acc = an.instance_accuracy(toy, "toy", ["small", "large"])
    decay = an.decay_table(acc, "small", "large")["decay"]
    queue = an.build_queue(toy.instances("toy"), decay=decay)
    assert queue.instance_ids == ["i0", "i1", "i5"]
    assert queue.items["group"].eq("decaying").all()
    assert queue.items["position"].tolist() == [0, 1, 2]
    strong = an.build_queue(toy.instances("toy"), decay=decay, min_drop=0.3)
    assert strong.instance_ids == ["i0", "i1"]
    assert an.build_queue(toy.instances("toy"), decay=decay, limit=1).notes


def test_blind_queue_is_reproducible_hides_group_and_mixes_controls(toy: Store):
    acc = an.instance_accuracy(toy, "toy", ["small", "large"])
    decay = an.decay_table(acc, "small", "large")["decay"]
    inst = toy.instances("toy")
    first = an.build_queue(inst, decay=decay, blind=True, seed=7, control_ratio=1.0)
    again = an.build_queue(inst, decay=decay, blind=True, seed=7, control_ratio=1.0)
    assert first.instance_ids == again.instance_ids
    assert first.n_focus == 3 and first.n_controls == 3 and len(first) == 6
    # controls are non-decaying instances (decay >= 0): i2, i3, i4
    controls = first.items.loc[first.items["group"] == "control", "instance_id"]
    assert set(controls) == {"i2", "i3", "i4"}
    assert set(first.instance_ids) == set(IDS)
    shown = first.shown()
    assert list(shown.columns) == ["position", "instance_id"]
    # another seed mixes them differently (6! orders: the chance two seeds match is tiny)
    orders = {tuple(an.build_queue(inst, decay=decay, blind=True, seed=s).instance_ids)
              for s in range(5)}
    assert len(orders) > 1
    # fewer controls than asked: all three are used and the queue says so
    many = an.build_queue(inst, decay=decay, blind=True, seed=1, control_ratio=2.0)
    assert many.n_controls == 3 and "only 3 control" in many.notes[0]
    # not blind: the group is shown
    assert "group" in an.build_queue(inst, decay=decay).shown().columns


def test_queue_from_imported_groups(toy: Store):
    inst = toy.instances("toy")
    plain = an.build_queue(inst)
    assert plain.source == "group" and plain.instance_ids == ["i0", "i2"]
    blind = an.build_queue(inst, blind=True, seed=3, control_ratio=1.0)
    assert blind.n_controls == 2
    assert set(blind.items.loc[blind.items["group"] == "control", "instance_id"]) <= {
        "i1", "i3", "i4", "i5"}
    with pytest.raises(StoreError, match="group"):
        an.build_queue(inst.drop(columns="group"))


def test_progress_and_next_position_follow_the_log(toy: Store):
    acc = an.instance_accuracy(toy, "toy", ["small", "large"])
    queue = an.build_queue(toy.instances("toy"), decay=an.decay_table(acc, "small", "large")["decay"])
    cur = toy.annotations(current=True)
    assert an.progress(queue, cur, "toy", "ann") == (0, 3)
    assert an.next_position(queue, cur, "toy", "ann") == 0
    toy.annotate("toy", "i0", "ann", "wrong")
    toy.annotate("toy", "i1", "bob", "correct")  # someone else's verdict does not count
    cur = toy.annotations(current=True)
    assert an.progress(queue, cur, "toy", "ann") == (1, 3)
    assert an.next_position(queue, cur, "toy", "ann") == 1
    toy.annotate("toy", "i5", "ann", "correct")
    cur = toy.annotations(current=True)
    assert an.next_position(queue, cur, "toy", "ann", start=2) == 1  # wraps round
    toy.annotate("toy", "i1", "ann", "unsure")
    cur = toy.annotations(current=True)
    assert an.progress(queue, cur, "toy", "ann") == (3, 3)
    assert an.next_position(queue, cur, "toy", "ann", start=2) == 2  # all done: stay


# -- agreement -------------------------------------------------------------------------


def test_cohen_kappa_by_hand():
    # p_o = 3/4; a: correct .5 wrong .5; b: correct .25 wrong .75; p_e = .125 + .375 = .5
    # kappa = (.75 - .5) / (1 - .5) = .5
    a = ["correct", "correct", "wrong", "wrong"]
    b = ["correct", "wrong", "wrong", "wrong"]
    assert an.cohen_kappa(a, b) == pytest.approx(0.5)
    assert an.cohen_kappa(a, a) == pytest.approx(1.0)
    # perfect disagreement on a balanced split: p_o = 0, p_e = .5 -> -1
    assert an.cohen_kappa(["correct", "wrong"], ["wrong", "correct"]) == pytest.approx(-1.0)
    assert np.isnan(an.cohen_kappa(["wrong"] * 3, ["wrong"] * 3))  # p_e = 1: undefined
    assert np.isnan(an.cohen_kappa([], []))


def test_fleiss_kappa_by_hand_and_published_example(store: Store):
    # Fleiss' kappa of the annotators is seedlab.stats' (one implementation); the count
    # tables here are items x categories.
    # 3 items, 3 raters: [3,0] P=1, [2,1] P=1/3, [0,3] P=1 -> P_bar = 7/9;
    # p = (5/9, 4/9), P_e = 41/81; kappa = (63/81 - 41/81) / (40/81) = 22/40
    assert stats.fleiss_kappa_counts([[3, 0], [2, 1], [0, 3]]) == pytest.approx(0.55)
    # Fleiss (1971) / Wikipedia's worked example: 10 items, 14 raters, 5 categories: 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert stats.fleiss_kappa_counts(table) == pytest.approx(0.20993, abs=1e-4)
    # unequal raters: [2,0] P=1, [2,1] P=1/3 -> P_bar = 2/3; p = (4/5, 1/5), P_e = 17/25;
    # kappa = (2/3 - 17/25) / (8/25) = -1/24. Through the agreement of a log: item x judged
    # correct by two annotators, item y correct by two and wrong by a third.
    log = pd.DataFrame({"task": ["toy"] * 5, "instance_id": ["x", "x", "y", "y", "y"],
                        "annotator": ["a", "b", "a", "b", "c"],
                        "verdict": ["correct", "correct", "correct", "correct", "wrong"]})
    unequal = an.agreement(log, "toy")
    assert unequal.method == "fleiss" and unequal.kappa == pytest.approx(-1 / 24)
    with pytest.raises(ValueError, match="raters"):
        stats.fleiss_kappa_counts([[1, 0], [2, 0]])


def test_agreement_from_the_log(toy: Store):
    cur = toy.annotations(current=True)
    assert an.agreement(cur, "toy").method is None
    toy.annotate("toy", "i0", "ann", "correct")
    toy.annotate("toy", "i1", "ann", "correct")
    toy.annotate("toy", "i2", "ann", "wrong")
    toy.annotate("toy", "i3", "ann", "wrong")
    for iid, verdict in zip(["i0", "i1", "i2", "i3"], ["correct", "wrong", "wrong", "wrong"]):
        toy.annotate("toy", iid, "bob", verdict)
    two = an.agreement(toy.annotations(current=True), "toy")
    assert two.method == "cohen" and two.n_items == 4
    assert two.kappa == pytest.approx(0.5)  # the Cohen example above
    assert two.observed == pytest.approx(0.75)
    assert two.pairwise[0, 1] == pytest.approx(0.5) and two.pair_n[0, 1] == 4
    assert "Cohen's kappa = 0.500" in two.message

    # a third annotator on i0, i1, i2 and bob changing his mind on i1: the current
    # verdicts are i0 c,c,c ; i1 c,c,w ; i2 w,w,w (i3 still has two: w,w)
    toy.annotate("toy", "i1", "bob", "correct")
    for iid, verdict in zip(["i0", "i1", "i2"], ["correct", "wrong", "wrong"]):
        toy.annotate("toy", iid, "cy", verdict)
    three = an.agreement(toy.annotations(current=True), "toy", instance_ids=["i0", "i1", "i2"])
    assert three.method == "fleiss" and three.n_items == 3
    assert three.kappa == pytest.approx(0.55)  # the Fleiss example above
    assert three.observed == pytest.approx(7 / 9)
    # the log kept bob's first verdict on i1
    log = toy.annotations()
    assert log[(log["annotator"] == "bob") & (log["instance_id"] == "i1")]["verdict"].tolist() \
        == ["wrong", "correct"]


# -- export ----------------------------------------------------------------------------


def test_export_round_trips_through_csv_and_jsonl(toy: Store, tmp_path):
    toy.annotate("toy", "i0", "ann", "wrong", "gold says yes, \"text\" says no\nsecond line")
    toy.annotate("toy", "i1", "ann", "reasonable")
    toy.annotate("toy", "i0", "bob", "unsure", "ünïcode")
    frame = an.export_frame(toy, "toy")
    assert frame["instance_id"].tolist() == ["i0", "i1", "i0"]
    assert frame["label"].tolist() == ["yes"] * 3 and frame["split"].eq("dev").all()
    assert frame.loc[0, "text_b"] == 'hyp, "0"'

    for fmt, data in (("csv", an.to_csv(frame)), ("jsonl", an.to_jsonl(frame))):
        path = tmp_path / f"verdicts.{fmt}"
        path.write_bytes(data)
        back = an.read_verdicts(path)
        assert list(back.columns) == an.EXPORT_COLUMNS
        expected = frame.astype("string").fillna("")
        pd.testing.assert_frame_equal(back.fillna(""), expected, check_dtype=False)
    lines = an.to_jsonl(frame).decode().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["note"] == "ünïcode"

    # the log (not just current verdicts) exports one row per click
    toy.annotate("toy", "i1", "ann", "correct")
    assert len(an.export_frame(toy, "toy", current=False)) == 4
    assert len(an.export_frame(toy, "toy")) == 3
    assert an.export_frame(toy, "nothing").empty


def test_reading_bad_verdict_files_names_file_line_and_field(tmp_path):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("task,instance_id,annotator,verdict\ntoy,i0,ann,wrong\ntoy,i1,ann,maybe\n")
    with pytest.raises(InputError) as err:
        an.read_verdicts(bad_csv)
    assert err.value.line == 3 and err.value.field == "verdict" and "bad.csv" in str(err.value)

    no_col = tmp_path / "nocol.csv"
    no_col.write_text("task,instance_id,verdict\ntoy,i0,wrong\n")
    with pytest.raises(InputError) as err:
        an.read_verdicts(no_col)
    assert err.value.field == "annotator" and err.value.line == 1

    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"task": "toy", "instance_id": "i0", "annotator": "a", "verdict": "wrong"}'
                        '\n\n{"task": "toy", "instance_id": "i1", "annotator": "a"}\n')
    with pytest.raises(InputError) as err:
        an.read_verdicts(bad_json)
    assert err.value.line == 3 and err.value.field == "verdict"
    with pytest.raises(InputError, match="line 1"):
        an.read_verdicts(b"{not json", fmt="jsonl", name="upload.jsonl")
    # The same JSON-lines reader as the table importer: a non-object line and a NaN are
    # refused with the line named.
    with pytest.raises(InputError, match=r"upload.jsonl, line 2: a list, not an object"):
        an.read_verdicts(b'\n["toy", "i0"]\n', fmt="jsonl", name="upload.jsonl")
    with pytest.raises(InputError, match=r"line 1: not valid JSON: NaN is not a JSON number"):
        an.read_verdicts(b'{"task": "toy", "instance_id": "i0", "annotator": "a",'
                         b' "verdict": "wrong", "note": NaN}', fmt="jsonl", name="u.jsonl")
    ok = an.read_verdicts(b"task,instance_id,annotator,verdict\ntoy,i0,ann,Wrong\n", fmt="csv")
    assert ok["verdict"].tolist() == ["wrong"]


def test_unequal_rater_kappa_is_defined_for_a_nearly_unanimous_large_table():
    """1 - p_e is tiny but not 0: kappa is defined (a relative tolerance called it NaN)."""
    n = 200_000
    counts = np.zeros((n, 2))
    counts[:, 0] = 2
    counts[: n // 2, 0] = 3  # items with 3 raters and items with 2
    counts[0] = [1, 2]  # one item where raters disagree
    kappa = an._fleiss_kappa_unequal(counts)
    assert np.isfinite(kappa)
    # by hand: P_0 = 1/3, every other P_i = 1 -> P_bar = 1 - (2/3) / n
    total = counts.sum()
    p = counts.sum(axis=0) / total
    p_e = (p**2).sum()
    assert kappa == pytest.approx(((1 - (2 / 3) / n) - p_e) / (1 - p_e), rel=1e-9)
    # every rater gives the same verdict: p_e is exactly 1 and kappa undefined
    assert np.isnan(an._fleiss_kappa_unequal(np.array([[2.0, 0.0], [3.0, 0.0]])))
