"""A worker: claims queued jobs one at a time and runs them on one device.

``seedlab worker`` runs one worker per GPU (each with its own ``CUDA_VISIBLE_DEVICES``),
or one CPU worker where there is no GPU. While a job runs, a heartbeat thread refreshes
the job's heartbeat; when the job is cancelled or taken away (re-queued as stale), the
heartbeat notices and the trainer stops at its next step. Every worker also re-queues
jobs whose workers died (``queue.reap_stale``) before it claims the next one.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
import traceback
from dataclasses import dataclass

from seedlab.errors import SeedlabError
from seedlab.runs import queue, trainer
from seedlab.runs.queue import record_worker
from seedlab.store import Store


@dataclass
class WorkerConfig:
    """``heartbeat_s``: how often a running job's heartbeat is refreshed; ``stale_s``: a
    running job whose heartbeat is older is re-queued; ``once``: exit when the queue is
    empty; ``idle_exit_s``: otherwise exit after this long with nothing to do (None:
    never); ``max_attempts``: a job whose worker died this many times is failed."""

    device: str = "cpu"
    heartbeat_s: float = 5.0
    stale_s: float = 120.0
    poll_s: float = 2.0
    once: bool = False
    idle_exit_s: float | None = None
    max_attempts: int = 3


def worker_id_for(device: str, pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}:{device}"


_JOB_TEMP = re.compile(r"^\.tmp-job(\d+)-")


def sweep_job_temps(store: Store) -> list[str]:
    """Remove the half-written run folders (``runs/.tmp-job<id>-*``) of jobs that have
    ended (finished, failed, cancelled): a worker killed mid-job leaves one, and a job
    that then fails for good is never run again to clean it. Folders of queued or
    running jobs are left alone. Returns the names removed."""
    root = trainer.runs_root(store)
    if not root.is_dir():
        return []
    temps = [p for p in root.iterdir() if _JOB_TEMP.match(p.name) and p.is_dir()]
    if not temps:
        return []
    ended = set(queue.jobs(store, state=("finished", "failed", "cancelled"))["id"].astype(int))
    removed = []
    for path in temps:
        if int(_JOB_TEMP.match(path.name).group(1)) in ended:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


def reap(store: Store, stale_s: float = 120.0, max_attempts: int = 3) -> list[tuple[int, str]]:
    """``queue.reap_stale`` and then ``sweep_job_temps``: what every reader of the queue
    that may find dead workers (a worker, ``runs list``, the Runs page) calls."""
    changed = queue.reap_stale(store, stale_s, max_attempts)
    sweep_job_temps(store)
    return changed


class Worker:
    """Claims and runs jobs until the queue is empty (``once``) or it has idled too long."""

    def __init__(self, store: Store, config: WorkerConfig | None = None,
                 worker_id: str | None = None) -> None:
        self.store = store
        self.config = config or WorkerConfig()
        self.id = worker_id or os.environ.get("SEEDLAB_WORKER_ID") or worker_id_for(
            self.config.device)
        self.ran: list[tuple[int, str]] = []

    def run(self) -> int:
        """The worker loop; returns the number of jobs it ran."""
        cfg = self.config
        record_worker(self.store, self.id, os.getpid(), cfg.device, "idle")
        idle_since = time.time()
        try:
            while True:
                reap(self.store, cfg.stale_s, cfg.max_attempts)
                job = queue.claim(self.store, self.id, cfg.device)
                if job is None:
                    if cfg.once:
                        break
                    if cfg.idle_exit_s is not None and time.time() - idle_since > cfg.idle_exit_s:
                        break
                    record_worker(self.store, self.id, os.getpid(), cfg.device, "idle")
                    time.sleep(cfg.poll_s)
                    continue
                record_worker(self.store, self.id, os.getpid(), cfg.device, "busy", job.id)
                self.ran.append((job.id, self.run_one(job)))
                record_worker(self.store, self.id, os.getpid(), cfg.device, "idle")
                idle_since = time.time()
        finally:
            record_worker(self.store, self.id, os.getpid(), cfg.device, "exited")
        return len(self.ran)

    def run_one(self, job: queue.Job) -> str:
        """Run one claimed job; returns the state it ended in."""
        cfg = self.config
        log = trainer.Log(trainer.log_path(self.store, job.id))
        log(f"attempt {job.attempts} on worker {self.id} ({cfg.device})")
        lost = threading.Event()
        done = threading.Event()

        def beat() -> None:
            while not done.wait(cfg.heartbeat_s):
                if not queue.heartbeat(self.store, job.id, self.id):
                    lost.set()
                    return

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        started = time.time()
        last_write = [0.0]

        def progress(phase: str, step: int, total: int, loss: float | None) -> bool:
            if lost.is_set():
                return False
            now = time.time()
            if now - last_write[0] >= min(1.0, cfg.heartbeat_s) or (total and step >= total):
                last_write[0] = now
                eta = (now - started) / step * (total - step) if total and step else None
                if not queue.progress(self.store, job.id, self.id, phase=phase, step=step,
                                      total=total, loss=loss, eta_s=eta):
                    lost.set()
                    return False
            return True

        try:
            result = trainer.run_job(self.store, job.id, job.spec, progress=progress)
            ok = queue.finish(self.store, job.id, self.id, run_dir=str(result.run_dir),
                              run_id=result.run_id, message=f"accuracy {result.accuracy:.4f}")
            return "finished" if ok else queue.get(self.store, job.id).state
        except trainer.JobCancelled:
            log("stopped: the job was cancelled or taken away from this worker")
            return queue.get(self.store, job.id).state
        except SeedlabError as exc:
            reason = str(exc)
        except MemoryError:
            reason = "the machine ran out of memory; lower batch_size or max_seq_length"
        except Exception as exc:  # noqa: BLE001 - the queue must move on whatever a job does
            reason = _plain_reason(exc, job.spec, cfg.device)
            log(traceback.format_exc())
        finally:
            done.set()
            thread.join(timeout=cfg.heartbeat_s + 5)
        log(f"failed: {reason}")
        queue.fail(self.store, job.id, self.id, reason)
        return "failed"


def _plain_reason(exc: Exception, spec, device: str) -> str:
    name = type(exc).__name__
    if name == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return (f"CUDA ran out of memory on {device} (batch size {spec.batch_size},"
                f" max_seq_length {spec.max_seq_length}): lower the batch size or the sequence"
                " length")
    return f"unexpected error ({name}): {exc}"
