"""Executors: where workers run. The app and the CLI talk only to ``Executor``.

``LocalPool``: detached ``seedlab worker`` processes, ``jobs_per_gpu`` of them per local
GPU (each with its own ``CUDA_VISIBLE_DEVICES``; small models leave a GPU idle with one
job), or that many CPU workers where there is no GPU. Its processes are recorded in the
catalogue's ``workers`` table (pid, host, device), so the app finds the pool again after
a restart instead of starting a second one.

Slurm (``runs.slurm``) does not run workers: each job is its own Slurm job, and compute
nodes never open the catalogue, so it submits, syncs, cancels and retries jobs instead
(``slurm.submit`` / ``slurm.sync``). ``executor_names`` lists what this machine offers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence

import pandas as pd

from seedlab.runs import slurm, trainer
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
                 heartbeat_s: float = 5.0, stale_s: float = 120.0,
                 jobs_per_gpu: int | None = None) -> None:
        self.gpus = list(gpus) if gpus is not None else None
        self.idle_exit_s = idle_exit_s
        self.heartbeat_s = heartbeat_s
        self.stale_s = stale_s
        if jobs_per_gpu is None:
            jobs_per_gpu = int(os.environ.get("SEEDLAB_JOBS_PER_GPU", "1"))
        self.jobs_per_gpu = jobs_per_gpu
        if self.jobs_per_gpu < 1:
            raise ValueError(f"jobs_per_gpu must be at least 1, not {self.jobs_per_gpu}")

    def devices(self) -> list[str]:
        gpus = self.gpus if self.gpus is not None else local_gpus()
        return [f"cuda:{g}" for g in gpus] or ["cpu"]

    def slots(self) -> list[str]:
        """One device per worker to run: each device ``jobs_per_gpu`` times."""
        return [d for d in self.devices() for _ in range(self.jobs_per_gpu)]

    def workers(self, store: Store) -> pd.DataFrame:
        return live_workers(store)

    def start(self, store: Store) -> pd.DataFrame:
        running = Counter(self.workers(store)["device"])
        wanted = Counter(self.slots())
        for device, n in wanted.items():
            for slot in range(running[device], n):
                self._spawn(store, device, slot)
        return self.workers(store)

    def _spawn(self, store: Store, device: str, slot: int = 0) -> int:
        env = dict(os.environ)
        env["CUDA_VISIBLE_DEVICES"] = device.removeprefix("cuda:") if device != "cpu" else ""
        env.update(slot_threads(self.jobs_per_gpu))
        logs = trainer.runs_root(store) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "seedlab", "--home", str(store.home), "worker",
                   "--device-label", device, "--idle-exit", str(self.idle_exit_s),
                   "--heartbeat", str(self.heartbeat_s), "--stale", str(self.stale_s)]
        out = (logs / f"worker-{device.replace(':', '')}-{slot}.log").open("a")
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


def slot_threads(jobs_per_device: int) -> dict[str, str]:
    """Environment that gives each of ``jobs_per_device`` workers sharing a machine its
    share of the CPU cores (torch would otherwise start one thread per core in each)."""
    if jobs_per_device <= 1:
        return {}
    share = str(max(1, (os.cpu_count() or 1) // jobs_per_device))
    return {"OMP_NUM_THREADS": share, "MKL_NUM_THREADS": share}


def default_executor() -> Executor:
    """The local pool the app starts for local jobs (``SEEDLAB_EXECUTOR`` may only name
    ``local``: Slurm jobs are submitted with ``runs.slurm.submit``, not by a pool)."""
    name = os.environ.get("SEEDLAB_EXECUTOR", "local")
    if name != "local":
        raise ValueError(f"executor {name!r} has no worker pool (only 'local' does; submit"
                         " Slurm jobs with seedlab.runs.slurm.submit)")
    return LocalPool()


def executor_names() -> dict[str, str | None]:
    """Each executor and why it cannot be used here (None when it can): what a form offers."""
    return {"local": None, "slurm": slurm.unavailable_reason()}
