"""seedlab.stats.datamap and label_issues: hand-checked per-instance views."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from seedlab import stats

# Three instances over 2 pretraining x 2 fine-tuning seeds:
# 0: always 0.9 (easy); 1: 0.1 / 0.9 alternating (ambiguous); 2: always 0.1 (hard).
P_CORRECT = np.array([[[0.9, 0.9], [0.9, 0.9]],
                      [[0.1, 0.9], [0.1, 0.9]],
                      [[0.1, 0.1], [0.1, 0.1]]])


def test_seed_data_map_hand_case():
    frame = stats.seed_data_map(P_CORRECT)
    assert frame["confidence"].tolist() == pytest.approx([0.9, 0.5, 0.1])
    assert frame["variability"].tolist() == pytest.approx([0.0, 0.4, 0.0])
    assert frame["correctness"].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert frame["region"].tolist() == ["easy", "ambiguous", "hard"]
    correct = np.ones_like(P_CORRECT)
    correct[2] = 0
    correct[1, 0, 0] = 0
    with_correct = stats.seed_data_map(P_CORRECT, correct)
    assert with_correct["correctness"].tolist() == pytest.approx([1.0, 0.75, 0.0])
    # Checkpoints are runs too: (N, P, F, E) flattens the trailing axes.
    four_d = stats.seed_data_map(np.repeat(P_CORRECT[..., None], 3, axis=3))
    pd.testing.assert_frame_equal(four_d, frame)


def test_seed_data_map_thresholds_and_errors():
    frame = stats.seed_data_map(P_CORRECT, variability_threshold=0.5,
                                confidence_threshold=0.95)
    assert frame["region"].tolist() == ["hard", "hard", "hard"]
    with pytest.raises(ValueError, match="NaN"):
        stats.seed_data_map(np.array([[0.5, np.nan]]))


def test_label_issues_hand_case():
    # Gold labels [0, 1, 0]. Runs predict instance 0 as 0 (3 of 4), instance 1 always 0,
    # instance 2 as 0 twice and 2 twice (tie -> class 0).
    pred = np.array([[[0, 0], [0, 1]], [[0, 0], [0, 0]], [[0, 2], [2, 0]]])
    labels = np.array([0, 1, 0])
    annotations = pd.DataFrame({"instance_id": ["b", "b", "c"],
                                "verdict": ["Correct", "Wrong", "unsure"]})
    frame = stats.label_issues(P_CORRECT, pred, labels, instance_ids=["a", "b", "c"],
                               annotations=annotations, label_list=["neg", "pos", "neutral"])
    # Scores: 1 - confidence = 0.1, 0.5, 0.9 -> order c, b, a.
    assert frame["instance_id"].tolist() == ["c", "b", "a"]
    assert frame["score"].tolist() == pytest.approx([0.9, 0.5, 0.1])
    assert frame["self_confidence"].tolist() == pytest.approx([0.1, 0.5, 0.9])
    assert frame["favoured"].tolist() == [0, 0, 0]
    assert frame["favoured_share"].tolist() == pytest.approx([0.5, 1.0, 0.75])
    assert frame["favours_other"].tolist() == [False, True, False]
    assert frame["annotator_disagrees"].tolist() == [pd.NA, True, pd.NA]
    assert frame["label_name"].tolist() == ["neg", "pos", "neg"]
    mapping = stats.label_issues(P_CORRECT, pred, labels, instance_ids=["a", "b", "c"],
                                 annotations={"a": "reasonable", "c": ["Wrong", None]})
    by_id = dict(zip(mapping["instance_id"], mapping["annotator_disagrees"]))
    assert [bool(by_id["a"]), bool(by_id["c"])] == [False, True]
    assert by_id["b"] is pd.NA


def test_label_issues_take_predictions_of_any_integer_type():
    pred = np.array([[[0, 0], [0, 1]], [[0, 0], [0, 0]], [[0, 2], [2, 0]]])
    labels = np.array([0, 1, 0])
    expected = stats.label_issues(P_CORRECT, pred, labels)
    assert expected["favoured_share"].tolist() == pytest.approx([0.5, 1.0, 0.75])
    for dtype in (np.int8, np.uint8, np.float64):
        pd.testing.assert_frame_equal(stats.label_issues(P_CORRECT, pred.astype(dtype), labels),
                                      expected)
    with pytest.raises(ValueError, match="missing runs"):
        stats.label_issues(P_CORRECT, np.where(pred == 2, -1, pred).astype(np.int8), labels)


def test_label_issues_rejects_missing_runs():
    pred = np.zeros((3, 2, 2), dtype=int)
    pred[0, 0, 0] = -1
    with pytest.raises(ValueError, match="missing runs"):
        stats.label_issues(P_CORRECT, pred, np.zeros(3, int))


def test_probabilities_out_of_range_are_refused():
    probs = np.full((4, 3), 0.5)
    probs[1, 2] = -1
    with pytest.raises(ValueError, match=re.escape(
            "seed_data_map: p_correct: scores must be 0/1 correctness or probabilities in"
            " [0, 1]; found values -1 at 1 cell (first at index (1, 2)): the store's code"
            " for a missing cell?")):
        stats.seed_data_map(probs)
    with pytest.raises(ValueError, match=r"seed_data_map: correct: .* found values 2 at 12"
                                         r" cells"):
        stats.seed_data_map(np.full((4, 3), 0.5), np.full((4, 3), 2))
    with pytest.raises(ValueError, match=r"label_issues: p_correct: .* found values 1\.2"):
        stats.label_issues(np.full((2, 3), 1.2), np.zeros((2, 3), int), np.zeros(2, int))
