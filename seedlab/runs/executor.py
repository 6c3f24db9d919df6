"""Executors: where workers run. The app and the CLI talk only to ``Executor``.

``LocalPool`` (now): one detached ``seedlab worker`` process per local GPU, each with its
own ``CUDA_VISIBLE_DEVICES``, or one CPU worker where there is no GPU. Its processes are
recorded in the catalogue's ``workers`` table (pid, host, device), so the app finds the
pool again after a restart instead of starting a second one. A cluster backend (Slurm
through submitit, Ray) implements the same three methods and runs ``Worker`` remotely
against the same queue.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence

import pandas as pd

from seedlab.runs import trainer
from seedlab.runs.queue import live_workers, record_worker
from seedlab.runs.worker import worker_id_for
from seedlab.store import Store


class Executor(ABC):
    """Starts and finds the workers that drain the job queue."""

    name: str = "executor"

    @abstractmethod
    def start(self, store: Store) -> pd.DataFrame:
        """Make sure workers are running for ``store``; returns the live workers."""

    @abstractmethod
    def workers(self, store: Store) -> pd.DataFrame:
        """The live workers (worker_id, pid, host, device, started_at, heartbeat, state,
        job_id)."""

    @abstractmethod
    def stop(self, store: Store) -> int:
        """Ask the workers to stop; returns how many were signalled."""


def local_gpus() -> list[str]:
    """Indices of the local NVIDIA GPUs, from ``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi -L``
    (without importing torch)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


class LocalPool(Executor):
    """One background worker per local GPU, or one CPU worker."""

    name = "local"

    def __init__(self, gpus: Sequence[str] | None = None, idle_exit_s: float = 600.0,
                 heartbeat_s: float = 5.0, stale_s: float = 120.0) -> None:
        self.gpus = list(gpus) if gpus is not None else None
        self.idle_exit_s = idle_exit_s
        self.heartbeat_s = heartbeat_s
        self.stale_s = stale_s

    def devices(self) -> list[str]:
        gpus = self.gpus if self.gpus is not None else local_gpus()
        return [f"cuda:{g}" for g in gpus] or ["cpu"]

    def workers(self, store: Store) -> pd.DataFrame:
        return live_workers(store)

    def start(self, store: Store) -> pd.DataFrame:
        running = set(self.workers(store)["device"])
        for device in self.devices():
            if device in running:
                continue
            self._spawn(store, device)
        return self.workers(store)

    def _spawn(self, store: Store, device: str) -> int:
        env = dict(os.environ)
        env["CUDA_VISIBLE_DEVICES"] = device.removeprefix("cuda:") if device != "cpu" else ""
        logs = trainer.runs_root(store) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "seedlab", "--home", str(store.home), "worker",
                   "--device-label", device, "--idle-exit", str(self.idle_exit_s),
                   "--heartbeat", str(self.heartbeat_s), "--stale", str(self.stale_s)]
        out = (logs / f"worker-{device.replace(':', '')}.log").open("a")
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        # Recorded at once so that a second start() before the worker is up finds it.
        worker_id = worker_id_for(device, proc.pid)
        record_worker(store, worker_id, proc.pid, device, "starting")
        return proc.pid

    def stop(self, store: Store) -> int:
        import signal
        import socket

        count = 0
        for row in self.workers(store).itertuples():
            if row.host == socket.gethostname():
                try:
                    os.kill(int(row.pid), signal.SIGTERM)
                    count += 1
                except ProcessLookupError:
                    pass
        return count


def default_executor() -> Executor:
    """The executor the app uses (``SEEDLAB_EXECUTOR``; only ``local`` exists now)."""
    name = os.environ.get("SEEDLAB_EXECUTOR", "local")
    if name != "local":
        raise ValueError(f"executor {name!r} is not available (only 'local')")
    return LocalPool()
