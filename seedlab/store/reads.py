"""The read side of ``Store``: DuckDB over the listed Parquet files, the dense arrays of
``seedlab.stats`` (through the cube cache), summaries. Nothing here writes the store."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from seedlab import cubes, schema
from seedlab.errors import StoreError
from seedlab.keys import ordered_sizes, seed_sort_key
from seedlab.store.tables import SeedArrays, as_list, flatten_extra, in_clause


class Reads:
    """The queries of ``Store`` (see the module docstring)."""

    # ``predictions(instance_id=...)`` answers from the dense cubes up to this many ids;
    # -1 always takes the Parquet scan (tests compare the two paths with it).
    cube_instance_limit: int = 1000
    # Called with the cubes' answer to each ``predictions(instance_id=...)`` (``None``
    # where the Parquet scan answers instead): tests and benchmarks see which path ran.
    cube_probe: Callable[[pd.DataFrame | None], None] | None = None

    # -- DuckDB --------------------------------------------------------------------------
    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._duck_lock:
            if self._duck is None:
                self._duck = duckdb.connect(":memory:")
            return self._duck.cursor()

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a DuckDB query (values bound as parameters) and return a DataFrame."""
        cur = self._cursor()
        try:
            return cur.execute(query, list(params or [])).df()
        finally:
            cur.close()

    # -- queries -------------------------------------------------------------------------
    def tasks(self) -> pd.DataFrame:
        """One row per task: label_list, simulated, source, description, n_instances, n_runs."""
        with self._read() as con:
            frame = pd.read_sql_query(
                "SELECT t.task, t.label_list, t.simulated, t.source, t.description,"
                " COALESCE(i.n_instances, 0) AS n_instances,"
                " (SELECT COUNT(*) FROM runs r WHERE r.task = t.task) AS n_runs"
                " FROM tasks t LEFT JOIN instance_files i ON i.task = t.task ORDER BY t.task",
                con,
            )
        frame["label_list"] = frame["label_list"].map(json.loads)
        frame["simulated"] = frame["simulated"].astype(bool)
        return frame

    def runs(
        self,
        task: str | Sequence[str] | None = None,
        size: str | Sequence[str] | None = None,
        pretrain_seed: Any = None,
        finetune_seed: Any = None,
    ) -> pd.DataFrame:
        """Run metadata, one row per run (columns ``schema.RUN_COLUMNS``)."""
        where, params = [], []
        for column, value in (("task", task), ("size", size), ("pretrain_seed", pretrain_seed),
                              ("finetune_seed", finetune_seed)):
            values = as_list(value)
            if values is not None:
                if column == "pretrain_seed":
                    values = [str(v) for v in values]
                if column == "finetune_seed":
                    values = [int(v) for v in values]
                clause, p = in_clause(column, values)
                where.append(clause)
                params += p
        query = f"SELECT {', '.join(schema.RUN_COLUMNS)} FROM runs"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY task, size, pretrain_seed, finetune_seed"
        with self._read() as con:
            frame = pd.read_sql_query(query, con, params=params)
        return frame

    def run_keys(self, task: str) -> set[tuple[str, str, str, int]]:
        """(task, size, pretrain_seed, finetune_seed) of every run of ``task``: what
        ``runs(task=task)`` lists, without building its frame."""
        with self._read() as con:
            rows = con.execute("SELECT size, pretrain_seed, finetune_seed FROM runs"
                               " WHERE task = ?", (task,)).fetchall()
        return {(task, str(size), str(p), int(f)) for size, p, f in rows}

    def sizes(self, task: str) -> list[str]:
        """Sizes of a task in the order of their mean number of parameters where known,
        else by name."""
        runs = self.runs(task=task)
        return ordered_sizes(runs["size"].unique().tolist())

    def predictions(
        self,
        task: str | Sequence[str] | None = None,
        size: str | Sequence[str] | None = None,
        pretrain_seed: Any = None,
        finetune_seed: Any = None,
        checkpoint: Any = None,
        instance_id: Any = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Predictions in long format (``schema.PREDICTION_COLUMNS``), filtered.

        Each filter takes one value or a list. ``checkpoint='last'`` keeps each run's last
        checkpoint. Rows come run by run (task, size, pretrain seed, fine-tuning seed), each
        run's rows in file order (with ``checkpoint='last'`` the Parquet scan fixes no
        order). A few instances (``instance_id``) are read from the dense cubes where those
        are built and hold the runs exactly, with the same result.
        """
        columns = list(columns or schema.PREDICTION_COLUMNS)
        unknown = set(columns) - set(schema.PREDICTION_COLUMNS) - {"run_id"}
        if unknown:
            raise ValueError(f"unknown prediction columns {sorted(unknown)}")
        every = self.runs(task=task, size=size)
        runs = every
        if pretrain_seed is not None:
            runs = runs[runs["pretrain_seed"].isin([str(v) for v in as_list(pretrain_seed)])]
        if finetune_seed is not None:
            runs = runs[runs["finetune_seed"].isin([int(v) for v in as_list(finetune_seed)])]
        if runs.empty:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        if instance_id is not None:
            fast = self._cube_predictions(every, runs, checkpoint,
                                          [str(i) for i in as_list(instance_id)], columns)
            if self.cube_probe is not None:
                self.cube_probe(fast)
            if fast is not None:
                return fast
        files = [str(self.home / f) for f in runs["file"]]
        where, params = [], [files]
        if checkpoint is not None and not (isinstance(checkpoint, str) and checkpoint == "last"):
            clause, p = in_clause("round(checkpoint, 4)",
                                   [round(float(c), 4) for c in as_list(checkpoint)])
            where.append(clause)
            params += p
        if instance_id is not None:
            clause, p = in_clause("instance_id", [str(i) for i in as_list(instance_id)])
            where.append(clause)
            params += p
        base = ("SELECT * FROM read_parquet(?, hive_partitioning = true,"
                " hive_types = {'task': VARCHAR, 'size': VARCHAR})")
        if checkpoint == "last":
            base = (f"SELECT * EXCLUDE (is_last) FROM (SELECT *, checkpoint = max(checkpoint)"
                    f" OVER (PARTITION BY run_id) AS is_last FROM ({base})) WHERE is_last")
        query = f"SELECT {', '.join(columns)} FROM ({base})"
        if where:
            query += " WHERE " + " AND ".join(where)
        return self.sql(query, params)

    def _cube_predictions(self, every: pd.DataFrame, runs: pd.DataFrame, checkpoint: Any,
                          instance_ids: list[str], columns: list[str]) -> pd.DataFrame | None:
        """``predictions`` of a few instances from the (already built) dense cubes of the
        runs' tasks and sizes, or ``None`` where the Parquet scan must answer: a cube not
        built, a run whose file the cube cannot reproduce row for row, probabilities it
        cannot hold. ``every``: all runs of the tasks and sizes; ``runs``: those selected,
        in ``runs()`` order, which is the order of the rows."""
        if len(set(instance_ids)) > self.cube_instance_limit:
            return None
        last = isinstance(checkpoint, str) and checkpoint == "last"
        wanted = (None if checkpoint is None or last
                  else {round(float(c), 4) for c in as_list(checkpoint)})
        with self._read() as con:
            sources = {t: self.cube_source(t, self.instance_file(t, con))
                       for t in runs["task"].unique()}
        parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
        # ``every`` is sorted by task and size: each (task, size) is one slice of it.
        keys = list(zip(every["task"].tolist(), every["size"].tolist()))
        starts = {k: keys.index(k) for k in dict.fromkeys(keys)}
        chosen = set(runs.index)
        for task, size in dict.fromkeys(zip(runs["task"].tolist(), runs["size"].tolist())):
            start = starts[task, size]
            pool = every.iloc[start:start + keys.count((task, size))]
            group = pool if chosen.issuperset(pool.index) else pool[pool.index.isin(chosen)]
            cube = cubes.cached_cube(sources[task], size, pool)
            if cube is None:
                return None
            layout = cube.layout                                      # (P, F)
            if layout is None:  # a cube saved before layouts existed
                return None
            probs = cubes.run_probs(sources[task], cube, pool) if "probs" in columns else None
            if "probs" in columns and probs is None:
                return None
            p_pos = {p: i for i, p in enumerate(cube.pretrain_seeds)}
            f_pos = {f: i for i, f in enumerate(cube.finetune_seeds)}
            seeds_p = group["pretrain_seed"].astype(str).to_numpy(dtype=object)
            seeds_f = group["finetune_seed"].to_numpy(dtype=np.int64)
            pi = np.array([p_pos[p] for p in seeds_p], dtype=np.int64)
            fi = np.array([f_pos[int(f)] for f in seeds_f], dtype=np.int64)
            order = layout[pi, fi]                                     # (R,)
            if (order < 0).any():
                return None
            where = cubes.positions(cube)
            rows = np.array(sorted({where[i] for i in instance_ids if i in where}),
                            dtype=np.int64)                            # (K,) cube order
            n_e = len(cube.checkpoints)
            if last:
                use = np.arange(n_e)[None, :] == cube.last[pi, fi][:, None]   # (R, E)
            elif wanted is not None:
                hit = np.array([round(c, 4) in wanted for c in cube.checkpoints], dtype=bool)
                use = np.broadcast_to(hit, (len(pi), n_e))
            else:
                use = np.ones((len(pi), n_e), dtype=bool)
            correct = np.asarray(cube.correct[rows])[:, pi, fi]         # (K, R, E)
            k_i, r_i, e_i = np.nonzero((correct >= 0) & use[None])
            # A file's rows: by checkpoint then instance (layout 1) or the other way round.
            major = np.where(order[r_i] == 1, e_i, k_i)
            minor = np.where(order[r_i] == 1, k_i, e_i)
            pick = np.lexsort((minor, major, r_i))
            k_i, r_i, e_i = k_i[pick], r_i[pick], e_i[pick]
            n_i, p_i, f_i = rows[k_i], pi[r_i], fi[r_i]
            values = {
                "task": np.full(len(n_i), task, dtype=object),
                "size": np.full(len(n_i), size, dtype=object),
                "run_id": group["run_id"].to_numpy(dtype=object)[r_i],
                "pretrain_seed": seeds_p[r_i],
                "finetune_seed": seeds_f[r_i],
                "checkpoint": np.array(cube.checkpoints, dtype=np.float64)[e_i],
                "instance_id": cube.instance_ids[n_i],
            }
            for name in ("pred", "correct", "p_correct"):
                if name in columns:
                    values[name] = np.asarray(getattr(cube, name)[n_i, p_i, f_i, e_i])
            if probs is not None:
                values["probs"] = np.asarray(probs[p_i, f_i, n_i, e_i])  # (rows, L)
            for c in columns:
                parts[c].append(values[c])
        # DuckDB's dtypes: strings as ``str``, or ``object`` when no row came back.
        text = "str" if any(len(v) for v in parts[columns[0]]) else object
        dtypes = {"task": text, "size": text, "run_id": text, "pretrain_seed": text,
                  "instance_id": text, "finetune_seed": np.int64, "checkpoint": np.float64,
                  "pred": np.int32, "correct": bool, "p_correct": np.float32}
        frame = {}
        for c in columns:
            joined = np.concatenate(parts[c]) if parts[c] else None
            if c == "probs":
                width = joined.shape[1] if joined is not None else 0
                joined = joined if joined is not None else np.zeros((0, width), np.float32)
                frame[c] = pd.Series(list(joined), dtype=object)
            else:
                frame[c] = pd.Series(joined if joined is not None else [], dtype=dtypes[c])
        return pd.DataFrame(frame)

    def instances(
        self,
        task: str | Sequence[str] | None = None,
        split: str | Sequence[str] | None = None,
        instance_id: Any = None,
    ) -> pd.DataFrame:
        """Instances (``schema.INSTANCE_COLUMNS``) with their extra fields as columns."""
        with self._read() as con:
            files = pd.read_sql_query("SELECT task, file FROM instance_files ORDER BY task", con)
        tasks = as_list(task)
        if tasks is not None:
            files = files[files["task"].isin(tasks)]
        frames = []
        for rec in files.itertuples(index=False):
            frame = pq.read_table(self.home / rec.file).to_pandas()
            frame.insert(0, "task", rec.task)
            frames.append(frame)
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in schema.INSTANCE_COLUMNS})
        frame = pd.concat(frames, ignore_index=True)
        if split is not None:
            frame = frame[frame["split"].isin(as_list(split))]
        if instance_id is not None:
            frame = frame[frame["instance_id"].isin([str(i) for i in as_list(instance_id)])]
        frame = flatten_extra(frame)
        return frame.reset_index(drop=True)

    def masks(
        self,
        setting: str | Sequence[str] | None = None,
        task: str | Sequence[str] | None = None,
        seed: Any = None,
        component: str | None = None,
    ) -> pd.DataFrame:
        """Pruning masks in long format (``schema.MASK_COLUMNS``)."""
        with self._read() as con:
            files = pd.read_sql_query("SELECT setting, task, file FROM mask_files", con)
        for column, value in (("setting", setting), ("task", task)):
            values = as_list(value)
            if values is not None:
                files = files[files[column].isin(values)]
        if files.empty:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in schema.MASK_COLUMNS})
        where, params = [], [[str(self.home / f) for f in files["file"]]]
        if seed is not None:
            clause, p = in_clause("seed", [int(s) for s in as_list(seed)])
            where.append(clause)
            params += p
        if component is not None:
            clause, p = in_clause("component", as_list(component))
            where.append(clause)
            params += p
        query = (
            f"SELECT {', '.join(schema.MASK_COLUMNS)} FROM read_parquet(?, hive_partitioning = true,"
            " hive_types = {'setting': VARCHAR, 'task': VARCHAR})"
        )
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY setting, task, seed, component, layer, head"
        return self.sql(query, params)

    def mask_arrays(self, setting: str, task: str, component: str = "head",
                    seeds: Sequence[int] | None = None) -> tuple[np.ndarray, list[int]]:
        """Masks of one setting and task as a dense ``(S, layers, heads)`` array for heads or
        ``(S, layers)`` for MLPs, with the seeds in order."""
        frame = self.masks(setting=setting, task=task, component=component, seed=seeds)
        if frame.empty:
            return np.zeros((0,)), []
        seed_list = sorted(frame["seed"].unique().tolist())
        s_idx = {s: i for i, s in enumerate(seed_list)}
        layers = int(frame["layer"].max()) + 1
        if component == "head":
            heads = int(frame["head"].max()) + 1
            out = np.zeros((len(seed_list), layers, heads))
            out[frame["seed"].map(s_idx).to_numpy(), frame["layer"].to_numpy(),
                frame["head"].to_numpy()] = frame["kept"].to_numpy(dtype=float)
        else:
            out = np.zeros((len(seed_list), layers))
            out[frame["seed"].map(s_idx).to_numpy(), frame["layer"].to_numpy()] = frame["kept"].to_numpy(dtype=float)
        return out, [int(s) for s in seed_list]

    def evaluations(self, experiment: str | Sequence[str] | None = None,
                    task: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Mask evaluation results (``schema.EVALUATION_COLUMNS``)."""
        with self._read() as con:
            files = [str(self.home / r[0]) for r in con.execute("SELECT file FROM evaluation_files")]
        if not files:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in schema.EVALUATION_COLUMNS})
        where, params = [], [files]
        for column, value in (("experiment", experiment), ("task", task)):
            values = as_list(value)
            if values is not None:
                clause, p = in_clause(column, values)
                where.append(clause)
                params += p
        query = f"SELECT DISTINCT {', '.join(schema.EVALUATION_COLUMNS)} FROM read_parquet(?)"
        if where:
            query += " WHERE " + " AND ".join(where)
        return self.sql(query + " ORDER BY experiment, variant, task, metric", params)

    def annotations(self, task: str | Sequence[str] | None = None,
                    annotator: str | Sequence[str] | None = None,
                    *, current: bool = False) -> pd.DataFrame:
        """The annotation log (``schema.ANNOTATION_COLUMNS`` plus ``id`` and ``source``).

        ``current=True`` keeps only the latest verdict per (task, instance_id, annotator).
        """
        where, params = [], []
        for column, value in (("task", task), ("annotator", annotator)):
            values = as_list(value)
            if values is not None:
                clause, p = in_clause(column, values)
                where.append(clause)
                params += p
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        if current:
            query = (
                "SELECT id, task, instance_id, annotator, verdict, note, at, source FROM ("
                " SELECT *, ROW_NUMBER() OVER (PARTITION BY task, instance_id, annotator"
                f" ORDER BY id DESC) AS rn FROM annotations{cond}) WHERE rn = 1 ORDER BY id"
            )
        else:
            query = ("SELECT id, task, instance_id, annotator, verdict, note, at, source"
                     f" FROM annotations{cond} ORDER BY id")
        with self._read() as con:
            return pd.read_sql_query(query, con, params=params)

    # -- dense arrays --------------------------------------------------------------------
    def arrays(
        self,
        task: str,
        size: str,
        pretrain_seeds: Sequence[Any] | None = None,
        finetune_seeds: Sequence[int] | None = None,
        checkpoint: Any = "last",
        split: str | Sequence[str] | None = None,
        instance_ids: Sequence[str] | None = None,
    ) -> SeedArrays:
        """Dense arrays of one task and size for ``seedlab.stats``.

        ``checkpoint``: ``'last'`` (each run's last, 3-D arrays), one value (3-D), a list or
        ``'all'`` (4-D, ``(N, P, F, E)``). Instances are those of the task's instance table
        (restricted to ``split`` / ``instance_ids``) that have predictions, in table order.
        """
        every_run = self.runs(task=task, size=size)
        runs = every_run
        if pretrain_seeds is not None:
            runs = runs[runs["pretrain_seed"].isin([str(s) for s in pretrain_seeds])]
        if finetune_seeds is not None:
            runs = runs[runs["finetune_seed"].isin([int(s) for s in finetune_seeds])]
        if runs.empty:
            raise StoreError(f"no runs for task {task!r}, size {size!r} with those seeds")
        p_list = ([str(s) for s in pretrain_seeds] if pretrain_seeds is not None
                  else sorted(runs["pretrain_seed"].unique(), key=seed_sort_key))
        f_list = ([int(s) for s in finetune_seeds] if finetune_seeds is not None
                  else sorted(int(s) for s in runs["finetune_seed"].unique()))
        present = set(zip(runs["pretrain_seed"], runs["finetune_seed"].astype(int)))
        missing = [(p, f) for p in p_list for f in f_list if (p, f) not in present]

        all_ckpts = sorted({c for cs in runs["checkpoints"] for c in json.loads(cs)})
        cube = cubes.load_cube(self.cube_source(task), size, every_run)
        rows = None
        if split is not None or instance_ids is not None:
            keep = np.ones(len(cube.instance_ids), dtype=bool)
            if split is not None:
                keep &= np.isin(cube.splits.astype(str), [str(s) for s in as_list(split)])
            if instance_ids is not None:
                keep &= np.isin(cube.instance_ids.astype(str), [str(i) for i in instance_ids])
            rows = np.flatnonzero(keep)
        wanted = all_ckpts if checkpoint == "all" else checkpoint
        correct, p_correct, pred, used = cubes.select(cube, p_list, f_list, wanted, rows)
        ids = cube.instance_ids if rows is None else cube.instance_ids[rows]
        labels = np.asarray(cube.labels if rows is None else cube.labels[rows], dtype=np.int64)
        return SeedArrays(
            task=task, size=size, instance_ids=ids, labels=labels,
            label_list=self.label_list(task), pretrain_seeds=p_list, finetune_seeds=f_list,
            checkpoints=used, correct=correct, p_correct=p_correct, pred=pred, missing=missing,
        )

    def class_probs(self, task: str, size: str, pretrain_seeds: Sequence[Any],
                    finetune_seeds: Sequence[int], checkpoint: Any = "last"
                    ) -> np.ndarray | None:
        """Class probabilities ``(N, P, F, L)`` float64 of one task and size, on the
        instances and seeds of ``arrays(task, size, pretrain_seeds, finetune_seeds,
        checkpoint)`` in the same order (no split), at ``checkpoint`` (``'last'``: each
        run's last; or one value). NaN where a run or a prediction is missing. ``None``
        when the runs' ``probs`` cannot be held densely (see ``cubes.run_probs``)."""
        every_run = self.runs(task=task, size=size)
        if every_run.empty:
            raise StoreError(f"no runs for task {task!r}, size {size!r}")
        cube = cubes.load_cube(self.cube_source(task), size, every_run)
        probs = cubes.run_probs(self.cube_source(task), cube, every_run)  # (P, F, N, E, L)
        if probs is None:
            return None
        p_pos = {p: i for i, p in enumerate(cube.pretrain_seeds)}
        f_pos = {f: i for i, f in enumerate(cube.finetune_seeds)}
        n, width = probs.shape[2], probs.shape[4]
        out = np.full((n, len(pretrain_seeds), len(finetune_seeds), width), np.nan)
        for a, p in enumerate(pretrain_seeds):
            for b, f in enumerate(finetune_seeds):
                pi, fi = p_pos.get(str(p)), f_pos.get(int(f))
                if pi is None or fi is None:
                    continue
                if isinstance(checkpoint, str) and checkpoint == "last":
                    e = int(cube.last[pi, fi])
                else:
                    e = next((i for i, c in enumerate(cube.checkpoints)
                              if round(c, 4) == round(float(checkpoint), 4)), -1)
                if e >= 0:
                    out[:, a, b] = cubes.probs_block(probs, pi, fi)[:, e]
        return out

    def cube_source(self, task: str, instance_file: str | None = None) -> cubes.CubeSource:
        """What ``seedlab.cubes`` builds the cubes of ``task`` from (``instance_file``: the
        task's registered instance file, when the caller has already read it)."""
        if instance_file is None:
            instance_file = self.instance_file(task)
        return cubes.CubeSource(
            home=self.home, task=task, instance_file=instance_file, cursor=self._cursor,
            instance_keys=lambda: self._instance_keys(task),
            label_list=lambda: self.label_list(task))

    def _instance_keys(self, task: str) -> pd.DataFrame:
        """instance_id, split and label of a task's instances, in table order (only the
        columns ``arrays`` needs: no text, no extra fields to parse)."""
        rel = self.instance_file(task)
        columns = ["instance_id", "split", "label"]
        if rel is None:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        return pq.read_table(self.home / rel, columns=columns).to_pandas()

    # -- summaries -----------------------------------------------------------------------
    def run_accuracy(self, task: str, size: str | Sequence[str] | None = None,
                     checkpoint: Any = "last") -> pd.DataFrame:
        """Accuracy of each run: task, size, pretrain_seed, finetune_seed, checkpoint,
        accuracy, n (instances scored). ``checkpoint``: ``'last'`` (each run's last), one
        value, or ``None`` / ``'all'`` (a row per checkpoint)."""
        cols = ["task", "size", "pretrain_seed", "finetune_seed", "checkpoint", "accuracy", "n"]
        runs = self.runs(task=task, size=size)
        source = self.cube_source(task)
        frames = []
        for size_name in ordered_sizes(runs["size"].unique().tolist()):
            cube = cubes.load_cube(source, size_name, runs[runs["size"] == size_name])
            if checkpoint == "last":
                wanted = np.unique(cube.last[cube.last >= 0])
            elif checkpoint in (None, "all"):
                wanted = np.arange(len(cube.checkpoints))
            else:
                wanted = np.array([i for i, c in enumerate(cube.checkpoints)
                                   if round(c, 4) == round(float(checkpoint), 4)], dtype=int)
            # Counts per run and checkpoint, kept beside the cube; only those asked for.
            counts = cubes.run_counts(cube)                       # (2, P, F, E)
            asked = np.zeros(len(cube.checkpoints), dtype=bool)
            asked[wanted] = True
            n = np.where(asked, counts[0], 0)
            hits = np.where(asked, counts[1], 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                accuracy = hits / n
            p_idx, f_idx, e_idx = np.nonzero(n > 0)
            if checkpoint == "last":
                on_last = cube.last[p_idx, f_idx] == e_idx
                p_idx, f_idx, e_idx = p_idx[on_last], f_idx[on_last], e_idx[on_last]
            frames.append(pd.DataFrame({
                "task": task, "size": size_name,
                "pretrain_seed": np.array(cube.pretrain_seeds, dtype=object)[p_idx],
                "finetune_seed": np.array(cube.finetune_seeds, dtype=np.int64)[f_idx],
                "checkpoint": np.array(cube.checkpoints, dtype=np.float64)[e_idx],
                "accuracy": accuracy[p_idx, f_idx, e_idx],
                "n": n[p_idx, f_idx, e_idx].astype(np.int64),
            }))
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        # Sizes in size order; within a size the cube's (seed, seed, checkpoint) order.
        return pd.concat(frames, ignore_index=True)[cols]

    def info(self) -> dict[str, Any]:
        """Counts of what the store holds, per task."""
        with self._read() as con:
            def per_task(query: str) -> dict[str, int]:
                return {r[0]: int(r[1]) for r in con.execute(query)}

            runs = per_task("SELECT task, COUNT(*) FROM runs GROUP BY task")
            preds = per_task("SELECT task, COALESCE(SUM(n_predictions), 0) FROM runs GROUP BY task")
            inst = per_task("SELECT task, n_instances FROM instance_files")
            masks = per_task("SELECT task, SUM(n_rows) FROM mask_files GROUP BY task")
            ann = per_task("SELECT task, COUNT(*) FROM annotations GROUP BY task")
            tasks_meta = {r[0]: {"simulated": bool(r[1]), "labels": json.loads(r[2])}
                          for r in con.execute("SELECT task, simulated, label_list FROM tasks")}
            sizes: dict[str, list[str]] = {}
            for t, s in con.execute("SELECT DISTINCT task, size FROM runs"):
                sizes.setdefault(t, []).append(s)
        names = sorted({*runs, *inst, *masks, *ann, *tasks_meta})
        per = {
            t: {
                "instances": inst.get(t, 0),
                "runs": runs.get(t, 0),
                "predictions": preds.get(t, 0),
                "masks": masks.get(t, 0),
                "annotations": ann.get(t, 0),
                "sizes": ordered_sizes(sizes.get(t, [])),
                "simulated": tasks_meta.get(t, {}).get("simulated", False),
            }
            for t in names
        }
        total = {k: sum(v[k] for v in per.values())
                 for k in ("instances", "runs", "predictions", "masks", "annotations")}
        return {"home": str(self.home), "version": self.version(), "totals": total, "tasks": per}


