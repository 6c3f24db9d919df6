"""The ``seedlab`` command line.

``seedlab [--home DIR] COMMAND ...``. Each subsystem adds its own commands through a
``register(subparsers)`` function (importers, simulator, runs, demo); this file only
wires them together and turns seedlab's errors into one clear line and exit code 2.

Which home a command opens: ``--home``, else ``$SEEDLAB_HOME``, else the user home
``home/`` beside the shipped study (made from it on first use; ``seedlab.store.shipped``),
else ``./data``. Apart from that default, only the
commands that write (``WRITING_COMMANDS``) create a missing home, and only one the user
named (``--home``, ``$SEEDLAB_HOME``, or ``demo --out``); every other command refuses a
missing home, or a folder that holds no store, with exit code 2, so a mistyped path never
becomes an empty store.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import seedlab
from seedlab.errors import SeedlabError

# (command, sub-command or None): the commands that may create the home they write to.
WRITING_COMMANDS = {("import", None), ("simulate", None), ("demo", None), ("runs", "submit")}
# The Streamlit app: ``app.py`` at the root of the checkout the package sits in.
APP_FILE = Path(seedlab.__file__).resolve().parent.parent / "app.py"

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

    migrate = sub.add_parser("migrate", help="move tasks stored under another spelling"
                             " (mnli, sst-2) to their one canonical name (MNLI, SST-2)")
    migrate.set_defaults(func=cmd_migrate)

    ann = sub.add_parser("annotations", help="export the annotation log")
    ann.add_argument("--task", default=None)
    ann.add_argument("--current", action="store_true", help="latest verdict per annotator only")
    ann.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    ann.add_argument("--output", "-o", type=Path, default=None, help="file (default stdout)")
    ann.set_defaults(func=cmd_annotations)

    app = sub.add_parser("app", help="open the dashboard (streamlit run app.py) on a home")
    app.add_argument("--home", type=Path, default=None, dest="app_home",
                     help="seedlab home to open (default: the global --home, $SEEDLAB_HOME"
                          " or ./data)")
    app.add_argument("--host", default="127.0.0.1",
                     help="address to serve on (default 127.0.0.1: this machine only)")
    app.add_argument("--port", type=int, default=8501)
    app.set_defaults(func_no_store=cmd_app)

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
    from seedlab.store.migrate import pending

    renames = pending(store)
    if renames:
        names = ", ".join(f"{old} -> {new}" for old, new in sorted(renames.items()))
        print(f"Some tasks are stored under another spelling of their name ({names}):"
              " `seedlab migrate` brings them together.")
    return 0


def cmd_reindex(store, args: argparse.Namespace) -> int:
    counts = store.reindex()
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def cmd_migrate(store, args: argparse.Namespace) -> int:
    from seedlab.store.migrate import canonical_tasks

    renamed = canonical_tasks(store)
    if not renamed:
        print("every task already has its canonical name")
    for r in renamed:
        print(f"{r.old} -> {r.new}: {r.runs} runs, {r.mask_settings} mask settings,"
              f" {r.verdicts} verdicts")
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


def cmd_app(args: argparse.Namespace) -> int:
    """Replace this process with ``streamlit run app.py`` on the chosen home (passed to the
    app as ``$SEEDLAB_HOME``, which the sidebar opens by default)."""
    if not APP_FILE.exists():
        raise SeedlabError(f"the dashboard's app.py is not at {APP_FILE} (beside the seedlab"
                           " package): run `seedlab app` from a checkout of the repository")
    env = {**os.environ, "SEEDLAB_HOME": str(args.home)}
    command = [sys.executable, "-m", "streamlit", "run", str(APP_FILE),
               "--server.address", args.host, "--server.port", str(args.port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    print(f"seedlab: serving {args.home} at http://{args.host}:{args.port}", file=sys.stderr)
    sys.stderr.flush()
    os.execve(sys.executable, command, env)
    return 0  # not reached


def resolve_home(args: argparse.Namespace) -> tuple[Path, bool]:
    """(the home a command works on, whether the user named it)."""
    named = getattr(args, "app_home", None) or args.home
    if named is None and args.command == "demo" and args.out is not None:
        named = args.out
    if named is not None:
        return Path(named).expanduser().resolve(), True
    if os.environ.get("SEEDLAB_HOME"):
        return Path(os.environ["SEEDLAB_HOME"]).expanduser().resolve(), True
    from seedlab.store.shipped import default_home

    return default_home(), False


def check_home(args: argparse.Namespace, home: Path, named: bool) -> bool:
    """Refuse a home this command must not create or open (raises ``SeedlabError``);
    returns whether the command may create it."""
    from seedlab.store import Store

    writes = (args.command, getattr(args, "runs_command", None)) in WRITING_COMMANDS
    if args.command == "simulate" and getattr(args, "zhong_release", None) is not None:
        return False  # writes a release folder, not a store
    from seedlab.store.shipped import is_user_home

    if is_user_home(home):
        return True  # the default: made from the shipped study on first use
    if not home.exists():
        if not writes:
            how = "--home" if args.home is not None else (
                "$SEEDLAB_HOME" if named else "the default ./data")
            raise SeedlabError(f"no seedlab home at {home} (from {how}); check the path, or"
                               " create a store there with `seedlab --home DIR import ...`")
        if not named:
            raise SeedlabError(f"no seedlab home at {home}: name the home to create with"
                               " --home DIR (or $SEEDLAB_HOME)")
        return True
    if not home.is_dir():
        raise SeedlabError(f"the seedlab home {home} is not a folder")
    if not writes and not Store.is_home(home):
        raise SeedlabError(f"{home} holds no seedlab store (no catalog.sqlite, no"
                           " predictions/ or instances/); check the path")
    return writes


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        try:
            home, named = resolve_home(args)
            create = check_home(args, home, named)
            if hasattr(args, "func_no_store"):
                if not (args.command == "simulate" and args.zhong_release is not None):
                    args.home = home
                return int(args.func_no_store(args) or 0)
            from seedlab.store import Store

            store = Store(home, create=create)
            return int(args.func(store, args) or 0)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, inside the handler below
    except SeedlabError as exc:
        print(f"seedlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seedlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `seedlab ... | head`: the reader left. Point stdout at /dev/null so the
        # interpreter's own flush at exit does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by it


if __name__ == "__main__":
    raise SystemExit(main())
