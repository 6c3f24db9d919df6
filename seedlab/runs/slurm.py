"""The Slurm executor: a grid's jobs run as a Slurm job array, submitted with submitit.

Head side (the CLI, the app): ``submit`` fetches every model the jobs name (compute nodes
are often offline), queues the jobs with ``executor='slurm'`` and submits them as one job
array; ``sync`` moves each job through the queue's states from what ``squeue``/``scontrol``
and the job's own files say, and registers finished run folders in the store; ``cancel``
scancels, ``retry`` resubmits, ``logs`` shows the trainer's log and Slurm's output.

Compute side (``run_cell``, on a node): never opens the home's catalogue, since SQLite's
WAL mode is unsafe on the network filesystems that clusters share homes over. It runs the
job with the local worker's entry point (``trainer.run_job``) against a throw-away store
in node-local scratch, then publishes the run folder into ``<home>/runs/`` with one
``os.replace`` (a crash leaves no folder or a whole one), and writes small JSON files the
head side reads::

    <home>/slurm.json                 default Slurm options (``load_config``)
    <home>/runs/slurm/job-<id>/       one folder per seedlab job
        status.json                   progress while running (phase, step, total, loss)
        outcome.json                  what the attempt ended with (finished / failed + why)
    <home>/runs/slurm/submitit/<slurm id>/   submitit's pickles and Slurm's stdout/stderr

Accounting (``sacct``, slurmdbd) is not needed: states come from ``squeue -t all`` and
``scontrol show job`` (finished jobs stay listed for the cluster's ``MinJobAge``), and
from ``outcome.json`` when Slurm has forgotten the job.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from seedlab.errors import InputError, SeedlabError
from seedlab.runs import queue, trainer
from seedlab.runs.catalogue import resolve_model
from seedlab.runs.spec import JobSpec
from seedlab.runs.worker import sweep_job_temps
from seedlab.store import Store

CONFIG_NAME = "slurm.json"
# Slurm job states (squeue %T) and what they mean for a seedlab job.
WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
           "RESV_DEL_HOLD", "SUSPENDED", "STOPPED"}
ACTIVE = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING"}
ENDED_REASONS = {
    "TIMEOUT": "Slurm stopped the job at its time limit ({time} min): raise the time limit"
               " (--time) and retry",
    "PREEMPTED": "Slurm preempted the job (a higher-priority job took its node): retry it",
    "NODE_FAIL": "the node running the job failed ({node}): retry it",
    "BOOT_FAIL": "the node for the job failed to boot: retry it",
    "OUT_OF_MEMORY": "Slurm killed the job for using more than its memory ({mem} MB):"
                     " raise the memory (--mem) or lower batch_size / max_seq_length",
    "DEADLINE": "Slurm ended the job at its deadline",
}


class SlurmError(SeedlabError):
    """Slurm cannot be reached or refused a request; the message says why in plain words."""


# -- options ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SlurmOptions:
    """What each Slurm job asks for. ``mem_mb``: memory per job in MiB (always sent: a job
    without it asks for a whole node); ``time_min``: time limit in minutes; ``None`` for
    partition, account, qos and constraint leaves the cluster's defaults."""

    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    mem_mb: int = 4096
    time_min: int = 60
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None

    def sbatch_parameters(self) -> dict[str, Any]:
        """Keyword arguments for ``submitit.SlurmExecutor.update_parameters``."""
        # Slurm's early warning (USR2) comes this long before the time limit. submitit
        # asks 90 s; for a short limit that is at the start, before Python has a handler,
        # and USR2's default action would kill the job: a quarter of the limit at most.
        warning_s = max(10, min(90, self.time_min * 60 // 4))
        params: dict[str, Any] = {"cpus_per_task": self.cpus_per_job, "mem": f"{self.mem_mb}M",
                                  "time": self.time_min, "signal_delay_s": warning_s}
        if self.gpus_per_job:
            params["gpus_per_node"] = self.gpus_per_job
        for name in ("partition", "account", "qos", "constraint"):
            if getattr(self, name):
                params[name] = getattr(self, name)
        return params

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> SlurmOptions:
        return parse_options(json.loads(text or "{}"), "the job's recorded Slurm options")


_TEXT_FIELDS = ("partition", "account", "qos", "constraint")
_OPTION_NAMES = [f.name for f in fields(SlurmOptions)]


def parse_memory(value: Any) -> int:
    """Memory in MiB from ``4096``, ``"4096M"``, ``"4G"``, ``"1.5G"`` or ``"1T"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        mib = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(value), re.IGNORECASE)
        if not m:
            raise ValueError(f"{value!r} is not an amount of memory")
        scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2}[m.group(2).upper()]
        mib = float(m.group(1)) * scale
    if not 1 <= mib < 2**40:
        raise ValueError(f"{value!r} is out of range")
    return round(mib)


def parse_time(value: Any) -> int:
    """A time limit in minutes from ``90``, ``"90"``, ``"1:30:00"`` or ``"1-00:00:00"``
    (Slurm's forms: minutes, H:MM:SS, D-HH:MM:SS); seconds round up to a minute."""
    if isinstance(value, int) and not isinstance(value, bool):
        minutes = value
    else:
        m = re.fullmatch(r"\s*(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?\s*", str(value))
        if not m:
            raise ValueError(f"{value!r} is not a time limit")
        days, first, second, third = m.groups()
        if second is None:          # "M" or "D-H"
            minutes = int(first) * (60 if days else 1)
        elif third is None:         # "M:S" or "D-H:M"
            minutes = (int(first) * 60 + int(second)) if days else int(first) + (int(second) > 0)
        else:                       # "H:M:S"
            minutes = int(first) * 60 + int(second) + (int(third) > 0)
        minutes += int(days or 0) * 24 * 60
    if not 1 <= minutes <= 365 * 24 * 60:
        raise ValueError(f"{value!r} is out of range")
    return int(minutes)


def parse_options(data: dict[str, Any], source: str, base: SlurmOptions | None = None
                  ) -> SlurmOptions:
    """``base`` (default: the built-in defaults) with the options in ``data`` applied.

    Keys: ``partition``, ``gpus_per_job``, ``cpus_per_job``, ``mem`` (or ``mem_mb``),
    ``time`` (or ``time_min``), ``account``, ``qos``, ``constraint``. ``None`` values
    leave ``base`` as it is. Errors name ``source`` and the field."""
    if not isinstance(data, dict):
        raise InputError(source, "not a JSON object", expected="an object of Slurm options")
    known = {*_OPTION_NAMES, "mem", "time"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(source, f"unknown Slurm option {unknown[0]!r}", field=unknown[0],
                         expected="one of " + ", ".join(sorted(known)))
    values = asdict(base or SlurmOptions())
    for name, value in data.items():
        if value is None:
            continue
        try:
            if name in ("mem", "mem_mb"):
                values["mem_mb"] = parse_memory(value)
            elif name in ("time", "time_min"):
                values["time_min"] = parse_time(value)
            elif name in ("gpus_per_job", "cpus_per_job"):
                if isinstance(value, bool) or not isinstance(value, int) or not (
                        0 <= value <= 1024) or (name == "cpus_per_job" and value == 0):
                    raise ValueError(f"{value!r} is not a count")
                values[name] = value
            else:
                text = str(value).strip()
                if not re.fullmatch(r"[A-Za-z0-9_.,:|&()!*\[\]-]+", text):
                    raise ValueError(f"{value!r} has characters Slurm names do not have")
                values[name] = text
        except ValueError as exc:
            expected = {"mem": "memory such as 4096, '4096M' or '4G'",
                        "mem_mb": "memory in MiB", "time": "minutes, 'H:MM:SS' or"
                        " 'D-HH:MM:SS'", "time_min": "minutes",
                        "gpus_per_job": "a whole number from 0", "cpus_per_job":
                        "a whole number from 1"}.get(name, "a Slurm name")
            raise InputError(source, str(exc), field=name, expected=expected) from exc
    return SlurmOptions(**values)


def config_path(home: str | Path) -> Path:
    return Path(home) / CONFIG_NAME


def load_config(home: str | Path) -> SlurmOptions:
    """The Slurm defaults of a home: ``<home>/slurm.json`` over the built-in defaults
    (``SlurmOptions()``), or the built-in defaults when the file does not exist."""
    path = config_path(home)
    if not path.exists():
        return SlurmOptions()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(path, "is not UTF-8 text", expected="a JSON object") from exc
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not JSON: {exc.msg}", line=exc.lineno,
                         expected="a JSON object of Slurm options") from exc
    return parse_options(data, str(path))


# -- talking to Slurm ------------------------------------------------------------------
def unavailable_reason() -> str | None:
    """Why Slurm cannot be used from here, or None when ``sbatch`` and ``squeue`` answer."""
    for command in ("sbatch", "squeue", "scancel", "scontrol", "srun"):
        if shutil.which(command) is None:
            return f"the Slurm command {command!r} is not installed on this machine"
    # ``scontrol ping`` asks the controller itself (a job query such as ``squeue -j 0``
    # can be refused by the client before any controller is asked, which read as "up").
    try:
        out = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20,
                             check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"scontrol could not run: {exc}"
    first = (out.stdout.strip().splitlines() or [""])[0]
    if out.returncode == 0 and " is UP" in first:
        return None
    return f"slurmctld does not answer: {first or out.stderr.strip() or 'no reply'}"


@dataclass(frozen=True)
class SlurmState:
    """What Slurm says of one job: its state (``RUNNING``, ``TIMEOUT``...), the reason
    column, the node list and the time limit."""

    state: str
    reason: str = ""
    node: str = ""
    time_limit: str = ""


def _run(command: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SlurmError(f"{command[0]} could not run: {exc}") from exc


def query_states(slurm_ids: Iterable[str]) -> dict[str, SlurmState]:
    """Slurm's view of ``slurm_ids`` (``12`` or ``12_3`` for array tasks): ``squeue -t
    all`` first, ``scontrol show job`` for the ids squeue did not list. Ids Slurm has
    forgotten are absent."""
    ids = sorted(set(slurm_ids))
    if not ids:
        return {}
    out = _run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r|%N|%l",
                f"--jobs={','.join(ids)}"])
    states: dict[str, SlurmState] = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 5 and parts[0] in ids:
            states[parts[0]] = SlurmState(parts[1].split()[0], parts[2], parts[3], parts[4])
    for slurm_id in ids:
        if slurm_id in states:
            continue
        shown = _run(["scontrol", "-o", "show", "job", slurm_id])
        fields_ = dict(re.findall(r"(\w+)=(\S*)", shown.stdout))
        if shown.returncode == 0 and "JobState" in fields_:
            states[slurm_id] = SlurmState(fields_["JobState"], fields_.get("Reason", ""),
                                          fields_.get("NodeList", ""),
                                          fields_.get("TimeLimit", ""))
    return states


# -- files shared by the two sides -----------------------------------------------------
def slurm_root(home: str | Path) -> Path:
    return Path(home) / "runs" / "slurm"


def cell_dir(home: str | Path, job_id: int) -> Path:
    """The folder a Slurm job writes ``status.json`` and ``outcome.json`` into."""
    return slurm_root(home) / f"job-{job_id}"


def submitit_folder(home: str | Path) -> Path:
    return slurm_root(home) / "submitit"


def _write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` with one ``os.replace``: a reader sees the old or the new
    file, never a part."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# -- compute side ----------------------------------------------------------------------
def _this_slurm_id() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "")


def run_cell(home: str, job_id: int, spec_json: str) -> str:
    """Run one seedlab job inside a Slurm job; returns the published run folder.

    The fine-tuning goes through ``trainer.run_job`` (the local worker's entry point) on
    a store in node-local scratch (``$TMPDIR``), so nothing here opens the home's
    catalogue; the finished run folder is copied into ``<home>/runs/`` and appears there
    with one ``os.replace``. ``status.json`` and ``outcome.json`` tell the head side what
    happened. Errors are recorded, then raised again so that Slurm marks the job failed."""
    home_path = Path(home)
    cell = cell_dir(home_path, job_id)
    cell.mkdir(parents=True, exist_ok=True)
    slurm_id = _this_slurm_id()
    spec = JobSpec.from_json(spec_json)
    # Models were fetched on the submitting machine; a compute node must not try the hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    # submitit answers Slurm's early warning (USR2 before the time limit) by ending the job
    # itself, which would hide the time limit from Slurm's state: note it and go on.
    signal.signal(signal.SIGUSR2, lambda signum, frame: _write_json(
        cell / "warning.json", {"slurm_id": slurm_id, "at": time.time(),
                                "warning": "Slurm signalled that the time limit is near"}))
    # Slurm ends a job (scancel, time limit, preemption) with SIGTERM, then SIGKILL after
    # its KillWait: turn SIGTERM into an exit so the scratch folder and any half-copied run
    # folder are removed and the outcome says so.
    signal.signal(signal.SIGTERM, _stopped_by_slurm)
    started = time.time()
    last = [0.0]

    def progress(phase: str, step: int, total: int, loss: float | None) -> bool:
        now = time.time()
        if now - last[0] >= 2.0 or (total and step >= total):
            last[0] = now
            eta = (now - started) / step * (total - step) if total and step else None
            _write_json(cell / "status.json", {"slurm_id": slurm_id, "phase": phase,
                                               "step": step, "total": total, "loss": loss,
                                               "eta_s": eta, "at": now})
        return True

    scratch = Path(tempfile.mkdtemp(prefix=f"seedlab-job{job_id}-",
                                    dir=os.environ.get("TMPDIR") or None))
    try:
        cpus = int(os.environ.get("SLURM_CPUS_PER_TASK", "0") or 0)
        if cpus:
            import torch

            torch.set_num_threads(cpus)
        scratch_home = scratch / "home"
        scratch_store = Store(scratch_home)
        # The trainer's live log goes straight to the home's log folder (append-only text).
        scratch_logs = trainer.log_path(scratch_store, job_id).parent
        shared_logs = home_path / scratch_logs.relative_to(scratch_home)
        shared_logs.mkdir(parents=True, exist_ok=True)
        scratch_logs.parent.mkdir(parents=True, exist_ok=True)
        if scratch_logs.is_dir() and not scratch_logs.is_symlink():
            shutil.rmtree(scratch_logs)
        scratch_logs.symlink_to(shared_logs, target_is_directory=True)
        trainer.Log(trainer.log_path(scratch_store, job_id))(
            f"Slurm job {slurm_id} on {os.uname().nodename}")
        result = trainer.run_job(scratch_store, job_id, spec, progress=progress)
        final = result.run_dir
        if final.is_relative_to(scratch_home):  # a run folder, not a model written in place
            final = _publish(job_id, final, home_path / final.relative_to(scratch_home))
        _write_json(cell / "outcome.json", {"slurm_id": slurm_id, "state": "finished",
                                            "run_dir": str(final),
                                            "accuracy": result.accuracy})
        return str(final)
    except BaseException as exc:
        _write_json(cell / "outcome.json", {"slurm_id": slurm_id, "state": "failed",
                                            "reason": _reason(exc, spec)})
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class StoppedBySlurm(SystemExit):
    """Slurm sent SIGTERM (scancel, time limit, preemption)."""


def _stopped_by_slurm(signum: int, frame: Any) -> None:
    # srun and slurmstepd may both signal: a second SIGTERM must not interrupt the cleanup.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise StoppedBySlurm(128 + signum)


def _reason(exc: BaseException, spec: JobSpec) -> str:
    if isinstance(exc, StoppedBySlurm):
        return "Slurm stopped the job (SIGTERM: cancelled, out of time or preempted)"
    if isinstance(exc, SeedlabError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "the job ran out of memory; raise --mem or lower batch_size or max_seq_length"
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return f"the job was stopped ({type(exc).__name__})"
    name = type(exc).__name__
    if name == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return (f"CUDA ran out of memory (batch size {spec.batch_size}, max_seq_length"
                f" {spec.max_seq_length}): lower the batch size or the sequence length")
    return f"unexpected error ({name}): {exc}"


def _publish(job_id: int, run_dir: Path, final: Path) -> Path:
    """Copy ``run_dir`` to ``final`` (on the shared filesystem) so that ``final`` appears
    whole or not at all. An existing complete folder (an earlier attempt's) is kept. The
    copy is staged under the trainer's ``.tmp-job<id>-`` prefix, which sweeps know."""
    if (final / "predictions.parquet").exists():
        return final
    tmp = final.parent / f".tmp-job{job_id}-slurm-{uuid.uuid4().hex[:8]}"
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(run_dir, tmp)
        if final.exists():  # an incomplete leftover: never read, safe to replace
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# -- head side -------------------------------------------------------------------------
def prefetch_models(specs: Sequence[JobSpec]) -> dict[str, Path]:
    """Resolve (and so fetch into the local cache) every model ``specs`` name, before
    anything is submitted: compute nodes are often offline. Raises ``ModelSourceError``
    naming the first model that cannot be had."""
    return {model: resolve_model(model) for model in dict.fromkeys(s.model for s in specs)}


def submit(store: Store, specs: Sequence[JobSpec], options: SlurmOptions | None = None
           ) -> list[int]:
    """Fetch the models, queue ``specs`` for Slurm (skipping runs already in the store or
    queued) and submit them as one job array; returns the new seedlab job ids.

    ``options``: default ``load_config(store.home)``. Raises ``SlurmError`` when Slurm
    cannot be reached (nothing is queued then)."""
    options = options or load_config(store.home)
    reason = unavailable_reason()
    if reason:
        raise SlurmError(f"cannot submit to Slurm: {reason}")
    prefetch_models(specs)
    ids = queue.submit(store, specs, executor="slurm")
    if ids:
        submit_jobs(store, ids, options)
    return ids


def submit_jobs(store: Store, job_ids: Sequence[int], options: SlurmOptions) -> dict[int, str]:
    """Submit queued Slurm jobs ``job_ids`` (one array); returns ``{job id: slurm id}``.
    A refused submission fails the jobs with Slurm's message and raises ``SlurmError``."""
    import submitit

    jobs = [queue.get(store, job_id) for job_id in job_ids]
    for job in jobs:
        cell = cell_dir(store.home, job.id)
        cell.mkdir(parents=True, exist_ok=True)
        for name in ("status.json", "outcome.json", "warning.json"):
            (cell / name).unlink(missing_ok=True)
    folder = submitit_folder(store.home)
    folder.mkdir(parents=True, exist_ok=True)
    executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=0)
    executor.update_parameters(job_name="seedlab", **options.sbatch_parameters())
    try:
        with executor.batch():
            handles = [executor.submit(run_cell, str(store.home), job.id, job.spec.to_json())
                       for job in jobs]
    except Exception as exc:  # sbatch's refusal (submitit's error), in its own words
        message = f"Slurm refused the submission: {str(exc).strip()}"
        for job in jobs:
            queue.external_update(store, job.id, job.worker, state="failed", message=message)
        raise SlurmError(message) from exc
    submitted = {}
    for job, handle in zip(jobs, handles):
        slurm_id = str(handle.job_id)
        if queue.set_external(store, job.id, slurm_id=slurm_id, options=options.to_json()):
            submitted[job.id] = slurm_id
        else:  # cancelled while it was being submitted
            _run(["scancel", slurm_id])
    return submitted


def _outcome(home: Path, job: queue.Job) -> dict | None:
    data = _read_json(cell_dir(home, job.id) / "outcome.json")
    return data if data and data.get("slurm_id") == job.slurm_id else None


def _status(home: Path, job: queue.Job) -> dict:
    data = _read_json(cell_dir(home, job.id) / "status.json")
    return data if data and data.get("slurm_id") == job.slurm_id else {}


def _ended_reason(info: SlurmState, job: queue.Job) -> str:
    options = SlurmOptions.from_json(job.slurm_options)
    template = ENDED_REASONS.get(info.state)
    if template:
        return template.format(time=options.time_min, node=info.node or "unknown",
                               mem=options.mem_mb)
    return f"Slurm ended the job as {info.state} (reason {info.reason or 'none given'});" \
           " see `seedlab runs logs`"


def sync(store: Store) -> list[tuple[int, str]]:
    """Bring the queue's Slurm jobs up to date with Slurm and the files the jobs wrote,
    registering finished run folders in the store. Returns ``(job id, state)`` for every
    job whose state changed. Safe to run from several head processes at once (every
    change is guarded, registration is idempotent)."""
    frame = queue.jobs(store).query("executor == 'slurm' and slurm_id.notna()")
    active = frame[frame["state"].isin(queue.ACTIVE)]
    # Jobs that ended for seedlab while Slurm still ran them (finishing, being cancelled):
    # their Slurm state is followed to its end.
    lagging = frame[~frame["state"].isin(queue.ACTIVE)
                    & frame["slurm_state"].isin([*WAITING, *ACTIVE, "SUBMITTED"])]
    if active.empty and lagging.empty:
        return []
    states = query_states([*active["slurm_id"], *lagging["slurm_id"]])
    for row in lagging.itertuples():
        info = states.get(row.slurm_id)
        queue.set_slurm_state(store, int(row.id), row.slurm_id, info.state if info else "GONE")
    changed = []
    for job_id in active["id"]:
        job = queue.get(store, int(job_id))
        new = _sync_one(store, job, states.get(job.slurm_id))
        if new and new != job.state:
            changed.append((job.id, new))
    sweep_job_temps(store)
    return changed


def _sync_one(store: Store, job: queue.Job, info: SlurmState | None) -> str | None:
    home = store.home
    outcome = _outcome(home, job)

    def update(state: str, **kw: Any) -> str | None:
        changed = queue.external_update(store, job.id, job.worker, state=state,
                                        slurm_state=info.state if info else "GONE", **kw)
        return state if changed else None

    if outcome and outcome.get("state") == "finished":
        run_dir = Path(str(outcome.get("run_dir", "")))
        runs = trainer.runs_root(store).resolve()
        if run_dir.resolve().parent != runs:  # only folders the job published, in this home
            return update("failed", message=f"the job's outcome names {run_dir}, which is not"
                          f" a run folder in {runs}")
        try:
            result = trainer.register(store, run_dir)
        except Exception as exc:  # noqa: BLE001 - a bad folder fails its job, not the sync
            return update("failed", message=f"could not register the run folder {run_dir}:"
                          f" {exc}")
        return update("finished", run_dir=str(result.run_dir), run_id=result.run_id,
                      phase="done", eta_s=0.0, message=f"accuracy {result.accuracy:.4f}")
    if info is None:
        if outcome:
            return update("failed", message=str(outcome.get("reason", "failed")))
        return update("failed", message=f"Slurm no longer knows job {job.slurm_id} and it left"
                      " no outcome (it ended before it could start, or long ago); retry it")
    if info.state in WAITING:
        why = f" ({info.reason})" if info.reason and info.reason != "None" else ""
        return update("queued", message=f"waiting in Slurm as {job.slurm_id}{why}")
    if info.state in ACTIVE:
        status = _status(home, job)
        return update("running", device=f"slurm:{info.node}" if info.node else None,
                      phase=status.get("phase", "starting"), step=status.get("step"),
                      total=status.get("total"), loss=status.get("loss"),
                      eta_s=status.get("eta_s"),
                      message=f"running in Slurm as {job.slurm_id} on {info.node}")
    if info.state == "CANCELLED":
        return update("cancelled", message=f"cancelled in Slurm ({job.slurm_id})")
    if info.state in ENDED_REASONS:  # Slurm ended it: Slurm's reason, not the job's SIGTERM
        return update("failed", message=_ended_reason(info, job))
    if outcome:  # the job's own account of its failure is the most precise
        return update("failed", message=str(outcome.get("reason", "failed")))
    if info.state == "COMPLETED":
        return update("failed", message=f"Slurm job {job.slurm_id} completed without writing"
                      " its outcome; see `seedlab runs logs`")
    return update("failed", message=_ended_reason(info, job))


def cancel(store: Store, job_id: int) -> str:
    """Cancel a job; a Slurm job is also scancelled. Returns the job's state after."""
    job = queue.get(store, job_id)
    state = queue.cancel(store, job_id)
    if job.executor == "slurm" and job.slurm_id and job.state in queue.ACTIVE:
        out = _run(["scancel", job.slurm_id])
        if out.returncode != 0:
            raise SlurmError(f"scancel {job.slurm_id} failed: {out.stderr.strip()}")
    return state


def retry(store: Store, job_id: int, options: SlurmOptions | None = None) -> str:
    """Queue a failed or cancelled job again; a Slurm job is resubmitted (with ``options``,
    default the options it ran with). Returns the job's state after."""
    job = queue.get(store, job_id)
    state = queue.retry(store, job_id)
    if job.executor == "slurm" and state == "queued" and job.state != "queued":
        reason = unavailable_reason()
        if reason:
            queue.external_update(store, job_id, None, state="failed",
                                  message=f"cannot resubmit to Slurm: {reason}")
            raise SlurmError(f"cannot resubmit to Slurm: {reason}")
        submit_jobs(store, [job_id], options or SlurmOptions.from_json(job.slurm_options))
    return state


def output_paths(store: Store, job: queue.Job) -> list[Path]:
    """Slurm's stdout and stderr files of the job's latest Slurm attempt."""
    if not job.slurm_id:
        return []
    import submitit

    paths = submitit.core.utils.JobPaths(submitit_folder(store.home) / "%j",
                                         job_id=job.slurm_id, task_id=0)
    return [paths.stdout, paths.stderr]


def logs(store: Store, job_id: int, tail_bytes: int = 200_000) -> str:
    """The job's trainer log and (for a Slurm job) Slurm's output, each from its last
    ``tail_bytes`` bytes."""
    job = queue.get(store, job_id)
    parts = []
    for title, path in [("seedlab log", trainer.log_path(store, job_id)),
                        *[(f"Slurm {p.suffix.lstrip('.')} ({p.name})", p)
                          for p in output_paths(store, job)]]:
        if not path.is_file():
            continue
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - tail_bytes))
            text = fh.read().decode("utf-8", errors="replace")
        parts.append(f"== {title}: {path}\n{text}")
    return "\n".join(parts)


def slurm_view(job: queue.Job) -> str:
    """``12_3 RUNNING`` for a Slurm job, '' for a local one (for tables)."""
    if job.executor != "slurm":
        return ""
    return f"{job.slurm_id or '-'} {job.slurm_state or ''}".strip()

