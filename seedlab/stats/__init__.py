"""seedlab.stats: every analysis of the seed studies, as pure numpy/scipy functions.

Definitions: ../shared/docs/statistics.md. Arrays come from ``Store.arrays(...)``
(``SeedArrays``: ``correct``, ``p_correct``, ``pred`` of shape ``(N, P, F[, E])``).
"""

from .agreement import agreement_matrix, agreement_summary, flatten_runs, flip_rate, kappa_matrix
from .bootstrap import metric_values, multibootstrap
from .datamap import REGIONS, seed_data_map
from .decay import (
    DecayResult,
    bh_adjust,
    bh_bound,
    bh_details,
    decay_bounds,
    empirical_cdf,
    ensemble_correct,
    fisher_pvalues,
    instance_difference_correlation,
)
from .decomposition import (
    Decomposition,
    decompose,
    decomposition_ci,
    decomposition_ci_many,
    variance_by_bias,
    within_across,
)
from .label_issues import label_issues
from .masks import (
    fleiss_kappa,
    fleiss_kappa_counts,
    mask_jaccard,
    pairwise_jaccard,
    random_jaccard,
    stable_components,
    survival,
    task_count,
    task_overlap,
)

__all__ = [
    "REGIONS",
    "DecayResult",
    "Decomposition",
    "agreement_matrix",
    "agreement_summary",
    "bh_adjust",
    "bh_bound",
    "bh_details",
    "decay_bounds",
    "decompose",
    "decomposition_ci",
    "decomposition_ci_many",
    "empirical_cdf",
    "ensemble_correct",
    "fisher_pvalues",
    "flatten_runs",
    "fleiss_kappa",
    "fleiss_kappa_counts",
    "flip_rate",
    "instance_difference_correlation",
    "kappa_matrix",
    "label_issues",
    "mask_jaccard",
    "metric_values",
    "multibootstrap",
    "pairwise_jaccard",
    "random_jaccard",
    "seed_data_map",
    "stable_components",
    "survival",
    "task_count",
    "task_overlap",
    "variance_by_bias",
    "within_across",
]
