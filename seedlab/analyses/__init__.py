"""seedlab.analyses: one function per analysis a dashboard page shows.

Each takes a store reader (a ``seedlab.store.Store``, or the dashboard's cached
``seedlab.ui.data.Data``) and a frozen query naming the data and the analysis's options,
and returns a typed, frozen result: exactly what the page draws, so a notebook can call
what a page shows::

    from seedlab.store import Store
    from seedlab import analyses as an

    store = Store("data", create=False)
    q = dict(task="rotten_tomatoes", sizes=store.sizes("rotten_tomatoes"),
             pretrain_seeds=["0", "1", "2"], finetune_seeds=[1, 2])
    dec = an.decomposition(store, an.DecompositionQuery(**q, nboot=200))
    dec.means                      # sizes x terms (Bias and variance page)
    agree = an.agreement(store, an.AgreementQuery(**q, metric="kappa"))
    decay = an.decaying(store, an.DecayQuery(**q, small="L1-H064", large="L4-H128"))

Data flows one way: store -> ``seedlab.align`` (the one place sizes are aligned on the
instances they share) -> ``seedlab.stats`` -> here -> ``seedlab.figures`` -> pages.
Nothing here imports Streamlit; ``seedlab.ui.data`` caches these functions.

Pages and their analyses:

* Overview: ``task_table``, ``run_coverage``, ``run_accuracy``
* Bias and variance: ``decomposition``
* Agreement: ``run_predictions``, ``agreement``, ``disagreements``
* Decaying instances: ``decaying``, ``decay_browser`` (``label_issue_scores``)
* Annotate: ``instance_accuracy``, ``annotation_queue``
* Pruning masks: ``mask_choices``, ``masks``, ``mask_evaluations``
* Significance: ``significance``
* Seed data map: ``data_map``
"""

from seedlab.analyses.agreement import (
    Agreement,
    AgreementQuery,
    Disagreements,
    RunPredictions,
    agreement,
    block_mean,
    disagreements,
    run_predictions,
)
from seedlab.analyses.annotation import (
    AccuracyQuery,
    QueueQuery,
    annotation_queue,
    instance_accuracy,
)
from seedlab.analyses.datamap import DataMap, DataMapQuery, data_map
from seedlab.analyses.decay import (
    DecayBrowser,
    Decaying,
    DecayQuery,
    decay_browser,
    decaying,
    label_issue_scores,
)
from seedlab.analyses.decomposition import (
    Decomposition,
    DecompositionQuery,
    SizeDecomposition,
    decompose_size,
    decomposition,
)
from seedlab.analyses.masks import (
    MaskChoices,
    MaskEvaluations,
    MaskQuery,
    Masks,
    TaskMasks,
    mask_choices,
    mask_evaluations,
    masks,
)
from seedlab.analyses.overview import (
    Coverage,
    RunAccuracy,
    coverage,
    ordered_sizes,
    run_accuracy,
    run_coverage,
    sorted_seeds,
    task_table,
)
from seedlab.analyses.query import NotEnoughData, Query, Reader, with_instance_fields
from seedlab.analyses.significance import Significance, SignificanceQuery, significance

__all__ = [
    "AccuracyQuery", "Agreement", "AgreementQuery", "Coverage", "DataMap", "DataMapQuery",
    "DecayBrowser", "DecayQuery", "Decaying", "Decomposition", "DecompositionQuery",
    "Disagreements", "MaskChoices", "MaskEvaluations", "MaskQuery", "Masks", "NotEnoughData",
    "Query", "QueueQuery", "Reader", "RunAccuracy", "RunPredictions", "Significance",
    "SignificanceQuery", "SizeDecomposition", "TaskMasks", "agreement", "annotation_queue",
    "block_mean", "coverage", "data_map", "decay_browser", "decaying", "decompose_size", "decomposition",
    "disagreements", "instance_accuracy", "label_issue_scores", "mask_choices",
    "mask_evaluations", "masks", "ordered_sizes", "run_accuracy", "run_coverage",
    "run_predictions", "significance", "sorted_seeds", "task_table", "with_instance_fields",
]
