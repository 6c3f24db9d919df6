"""``seedlab import ...`` subcommands. Each calls the importer function of its format."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("import", help="import predictions, instances, masks or annotations")
    kinds = parser.add_subparsers(dest="format", metavar="FORMAT")
    kinds.required = True

    zhong = kinds.add_parser("zhong", help="Zhong et al. (2021) release: <task>/data.json + results/")
    zhong.add_argument("path", type=Path, help="release folder (holding one folder per task)")
    zhong.add_argument("--task", action="append", default=None,
                       help="import only this task folder (repeatable)")
    zhong.add_argument("--replace", action="store_true",
                       help="replace stored runs that have the same key but other predictions")
    zhong.set_defaults(func=_run("seedlab.importers.zhong", "import_zhong",
                                 lambda a: {"tasks": a.task, "replace": a.replace}))

    decaying = kinds.add_parser("zhong-decaying",
                                help="Zhong et al. decaying/*.pkl: instances, groups, rz verdicts")
    decaying.add_argument("path", type=Path, help="the decaying/ folder or one .pkl file")
    decaying.set_defaults(func=_run("seedlab.importers.zhong", "import_zhong_decaying",
                                    lambda a: {}))

    multiberts = kinds.add_parser("multiberts", help="MultiBERTs prediction release")
    multiberts.add_argument("path", type=Path, help="folder with index.tsv (or run_info.tsv)")
    multiberts.add_argument("--replace", action="store_true")
    multiberts.set_defaults(func=_run("seedlab.importers.multiberts", "import_multiberts",
                                      lambda a: {"replace": a.replace}))

    lottery = kinds.add_parser("lottery", help="Prasanna et al. (2020) masks/ and evaluate_masked/")
    lottery.add_argument("path", type=Path, help="folder holding masks/ (and evaluate_masked/)")
    lottery.add_argument("--replace", action="store_true",
                         help="replace stored masks of a (setting, task) that differ")
    lottery.set_defaults(func=_run("seedlab.importers.lottery", "import_lottery",
                                   lambda a: {"replace": a.replace}))

    table = kinds.add_parser(
        "table",
        help="long-format CSV / Parquet / JSONL, or dense .npy/.npz arrays with a JSON sidecar",
    )
    table.add_argument("path", type=Path)
    table.add_argument("--task", default=None, help="task name where the file has no task column")
    table.add_argument("--size", default=None, help="size label where the file has no size column")
    table.add_argument("--sidecar", type=Path, default=None,
                       help="JSON sidecar for numpy arrays (default: <file>.json)")
    table.add_argument("--replace", action="store_true")
    table.set_defaults(func=_run(
        "seedlab.importers.table", "import_table",
        lambda a: {"task": a.task, "size": a.size, "sidecar": a.sidecar, "replace": a.replace}))


def _run(module_name: str, function_name: str, kwargs_from_args):
    def command(store, args: argparse.Namespace) -> int:
        import importlib

        function = getattr(importlib.import_module(module_name), function_name)
        summary = function(store, args.path, **kwargs_from_args(args))
        print(json.dumps(summary, indent=2, default=str))
        return 0

    return command
