"""The ``seedlab`` command line.

``seedlab [--home DIR] COMMAND ...``. Each subsystem adds its own commands through a
``register(subparsers)`` function (importers, simulator, runs, demo); this file only
wires them together and turns seedlab's errors into one clear line and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from seedlab.errors import SeedlabError

# Modules that add subcommands: each defines ``register(subparsers)`` and sets
# ``func(store, args) -> int`` on its parsers (or ``func_no_store(args) -> int``).
COMMAND_MODULES = [
    "seedlab.importers.cli",
    "seedlab.simulate",
    "seedlab.runs.cli",
    "seedlab.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seedlab",
        description="seedlab: does my result survive a change of random seed?",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="seedlab home (the store); default $SEEDLAB_HOME or ./data",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    info = sub.add_parser("info", help="what the store holds, per task")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_info)

    reindex = sub.add_parser("reindex", help="rebuild the catalogue's file index from the files")
    reindex.set_defaults(func=cmd_reindex)

    ann = sub.add_parser("annotations", help="export the annotation log")
    ann.add_argument("--task", default=None)
    ann.add_argument("--current", action="store_true", help="latest verdict per annotator only")
    ann.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    ann.add_argument("--output", "-o", type=Path, default=None, help="file (default stdout)")
    ann.set_defaults(func=cmd_annotations)

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Only a subsystem that is not part of this build is skipped; a missing
            # dependency inside one is an error the user must see.
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def cmd_info(store, args: argparse.Namespace) -> int:
    info = store.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"seedlab home: {info['home']} (data version {info['version']})")
    if not info["tasks"]:
        print("The store is empty. Import predictions with `seedlab import ...` or run"
              " `seedlab simulate`.")
        return 0
    header = f"{'task':<16}{'instances':>10}{'runs':>7}{'predictions':>13}{'masks':>8}{'annotations':>13}  sizes"
    print(header)
    for task, row in info["tasks"].items():
        flag = " (simulated)" if row["simulated"] else ""
        print(f"{task:<16}{row['instances']:>10}{row['runs']:>7}{row['predictions']:>13}"
              f"{row['masks']:>8}{row['annotations']:>13}  {', '.join(row['sizes'])}{flag}")
    return 0


def cmd_reindex(store, args: argparse.Namespace) -> int:
    counts = store.reindex()
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def cmd_annotations(store, args: argparse.Namespace) -> int:
    frame = store.annotations(task=args.task, current=args.current)
    out = args.output.open("w") if args.output else sys.stdout
    try:
        if args.format == "csv":
            frame.to_csv(out, index=False)
        else:
            frame.to_json(out, orient="records", lines=True)
    finally:
        if args.output:
            out.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "func_no_store"):
            return int(args.func_no_store(args) or 0)
        from seedlab.store import Store

        store = Store(args.home)
        return int(args.func(store, args) or 0)
    except SeedlabError as exc:
        print(f"seedlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seedlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
