"""The Seed data map page: dataset cartography with seeds (and checkpoints) as the runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from seedlab import stats
from seedlab.analyses.decay import blank_texts
from seedlab.analyses.query import Query, Reader, require_complete, with_instance_fields

BROWSER_FIELDS = ("split", "group", "label", "text_a", "text_b")


@dataclass(frozen=True, kw_only=True)
class DataMapQuery(Query):
    """``size``: the one size mapped (the query's ``sizes`` are not used); a tuple
    ``checkpoint`` counts every checkpoint as a run. ``variability`` and ``confidence``:
    the thresholds of the ambiguous and easy regions."""

    size: str
    variability: float = 0.2
    confidence: float = 0.5


@dataclass(frozen=True)
class DataMap:
    """``frame``: one row per instance: instance_id, confidence, variability,
    correctness, region (``stats.seed_data_map``). ``counts``: instances per region."""

    frame: pd.DataFrame = field(repr=False)

    @property
    def counts(self) -> dict[str, int]:
        counts = self.frame["region"].value_counts()
        return {region: int(counts.get(region, 0)) for region in stats.REGIONS}

    def picked_ids(self, point_indices: Sequence[int]) -> list[str]:
        """The instance ids at rows ``point_indices`` of ``frame`` (the points selected on
        the map, which draws the frame in order); indices outside the frame are ignored."""
        n = len(self.frame)
        rows = [int(i) for i in point_indices if i is not None and 0 <= int(i) < n]
        return self.frame["instance_id"].iloc[rows].astype(str).tolist()

    def browser(self, instances: pd.DataFrame, regions: Sequence[str],
                picked: Sequence[str] = ()) -> pd.DataFrame:
        """The rows in ``regions`` (or, when given, the ``picked`` instance ids) with the
        instance fields, most variable first. ``instances``: the task's instance table."""
        frame = self.frame
        view = frame[frame["instance_id"].isin(picked)] if picked else \
            frame[frame["region"].isin(regions)]
        view = blank_texts(with_instance_fields(view.copy(), instances, BROWSER_FIELDS))
        return pd.DataFrame(view).sort_values("variability", ascending=False)


def data_map(reader: Reader, query: DataMapQuery) -> DataMap:
    """``stats.seed_data_map`` of ``query.size``; raises NotEnoughData for missing runs."""
    arrays = require_complete(query.arrays(reader, query.size), "The data map")
    frame = stats.seed_data_map(arrays.p_correct, arrays.correct,
                                variability_threshold=query.variability,
                                confidence_threshold=query.confidence)
    frame.insert(0, "instance_id", arrays.instance_ids)
    return DataMap(frame)
