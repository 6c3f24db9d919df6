"""Importers, one module per released format. Each takes a ``Store`` and a path, validates
everything before it writes, and commits in one transaction (a failed import leaves the
store as it was; importing the same data twice does not duplicate it).

* ``zhong``: Zhong et al. (2021) release, and its ``decaying/*.pkl`` annotations
* ``multiberts``: the MultiBERTs prediction release (classification and coreference)
* ``lottery``: Prasanna et al. (2020) pruning masks and mask evaluations
* ``table``: documented long-format CSV / Parquet / JSONL, and dense numpy arrays
"""
