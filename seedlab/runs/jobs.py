"""What every job kind shares: its errors, its progress hook (the heartbeat's way in), its
live log, where its folders go, and how a folder is written atomically.

A job (``finetune`` in ``runs.finetune``, ``pretrain`` in ``runs.pretrain``; the worker
calls ``runs.trainer.run_job``, which picks one by ``spec.kind``) reports each step to a
``ProgressFn``; the worker's function refreshes the queue's heartbeat and progress and
returns False once the job was cancelled or taken away, and the job then raises
``JobCancelled``. Output folders are written under a temporary name beside their final
place and moved there with one ``os.replace`` (``atomic_folder``): a crash leaves either
no folder or a whole one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seedlab.errors import InputError, SeedlabError


class JobCancelled(SeedlabError):
    """The job was cancelled (or taken away from this worker) while it ran."""


class JobFailed(SeedlabError):
    """A job that cannot run; the message says why in plain words."""


# progress(phase, step, total, loss) -> False to stop the job. ``total`` is 0 where the
# number of steps is not known in advance (pruning).
ProgressFn = Callable[[str, int, int, float | None], bool]


@dataclass
class RunResult:
    """What a finished job hands back to the worker: its folder, the id it is known by
    (a store run id, or ``pretrain:...``) and its headline accuracy (0..1)."""

    run_dir: Path
    run_id: str
    accuracy: float


def runs_root(store: Any) -> Path:
    """``<home>/runs``: run folders, live logs, the registration lock."""
    return Path(store.home) / "runs"


def log_path(store: Any, job_id: int) -> Path:
    """The live log of job ``job_id``, appended across attempts."""
    return runs_root(store) / "logs" / f"job-{job_id}.log"


def label(text: object) -> str:
    """``text`` made safe for a folder name (anything but ``A-Za-z0-9_.+-`` becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", str(text))


class Log:
    """Appends timestamped lines to the job's live log."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def __call__(self, message: str) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


def check_progress(progress: ProgressFn, phase: str, step: int, total: int,
                   loss: float | None) -> None:
    """Report a step; raise ``JobCancelled`` when the worker says stop."""
    if not progress(phase, step, total, loss):
        raise JobCancelled("cancelled")


def versions() -> dict[str, str]:
    """Library versions and seedlab's git commit, for a run's provenance."""
    import torch
    import transformers

    import seedlab

    commit = ""
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "rev-parse", "HEAD"], check=False, capture_output=True,
                                text=True, cwd=Path(seedlab.__file__).parent,
                                timeout=5).stdout.strip()
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "seedlab": getattr(seedlab, "__version__", ""), "git_commit": commit}


@contextlib.contextmanager
def atomic_folder(final: Path, tmp_prefix: str | None = None, *,
                  clean_stale: bool = True) -> Iterator[Path]:
    """Write a folder in one step: yields an empty temporary folder beside ``final``
    (named ``tmp_prefix`` + a random token; default ``.tmp-<final name>-``); when the
    block ends it becomes ``final`` with one ``os.replace``, and when the block raises it
    is removed. ``clean_stale``: first remove temporary folders of earlier attempts (same
    prefix); leave it off where another process may be writing the same folder (the
    ``os.replace`` of the second one then fails with ``OSError``: ``final`` is not empty)."""
    prefix = tmp_prefix or f".tmp-{final.name}-"
    final.parent.mkdir(parents=True, exist_ok=True)
    if clean_stale:
        for stale in final.parent.glob(f"{prefix}*"):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f"{prefix}{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_json(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` (a job's ``config.json`` or ``pretrain.json``);
    ``InputError`` naming the file and ``what`` it should hold when it is missing or not
    a JSON object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(path, "missing", expected=what) from exc
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not JSON: {exc.msg}", line=exc.lineno, expected=what) from exc
    if not isinstance(data, dict):
        raise InputError(path, f"holds a {type(data).__name__}, not an object", expected=what)
    return data


__all__ = ["JobCancelled", "JobFailed", "Log", "ProgressFn", "RunResult", "atomic_folder",
           "check_progress", "label", "log_path", "read_json", "runs_root", "versions"]
