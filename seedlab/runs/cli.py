"""``seedlab runs ...`` and ``seedlab worker``.

    seedlab runs submit --spec FILE.json [--dry-run] [--start-workers]
    seedlab runs submit --task T --model M --size S --pretrain-seed 0 1 --finetune-seeds 1 2 ...
    seedlab runs submit --spec FILE.json --executor slurm [--partition P --gpus-per-job 1
                        --cpus-per-job 4 --mem 16G --time 2:00:00 --account A --qos Q
                        --constraint C]
    seedlab runs list [--json] [--state STATE]
    seedlab runs cancel ID | retry ID | logs ID
    seedlab runs sync                 register the runs Slurm jobs finished
    seedlab worker [--gpus 0,1] [--jobs-per-gpu N] [--once]

Slurm options default to ``<home>/slurm.json`` (``runs.slurm.load_config``); the flags
override them for one submission.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import pandas as pd

from seedlab.runs import plan, queue, slurm, spec
from seedlab.runs.worker import reap

SLURM_FLAGS = {"partition": str, "gpus-per-job": int, "cpus-per-job": int, "mem": str,
               "time": str, "account": str, "qos": str, "constraint": str}


def register(sub: argparse._SubParsersAction) -> None:
    runs = sub.add_parser("runs", help="background fine-tuning runs: submit, list, cancel, logs")
    rsub = runs.add_subparsers(dest="runs_command", metavar="ACTION")
    rsub.required = True

    submit = rsub.add_parser("submit", help="queue the jobs of a grid spec")
    submit.add_argument("--spec", default=None, help="JSON file with the grid spec")
    submit.add_argument("--task")
    submit.add_argument("--data", help="the task's folder or file (not for rotten_tomatoes)")
    submit.add_argument("--model", nargs="+", help="path, hub id or catalogue name")
    submit.add_argument("--size", nargs="+")
    submit.add_argument("--pretrain-seed", nargs="+", dest="pretrain_seed")
    submit.add_argument("--finetune-seeds", nargs="+", type=int, dest="finetune_seeds")
    submit.add_argument("--checkpoints", nargs="+", type=float)
    for flag, kind in (("epochs", float), ("learning-rate", float), ("batch-size", int),
                       ("max-seq-length", int), ("warmup", float), ("max-train-examples", int),
                       ("max-eval-examples", int)):
        submit.add_argument(f"--{flag}", type=kind, dest=flag.replace("-", "_"))
    submit.add_argument("--intermediate-task", dest="intermediate_task")
    submit.add_argument("--intermediate-data", dest="intermediate_data")
    submit.add_argument("--prune", action="store_true", help="prune heads and MLPs after training")
    submit.add_argument("--dry-run", action="store_true", help="show the jobs, queue nothing")
    submit.add_argument("--start-workers", action="store_true",
                        help="start the background worker pool after queueing (local)")
    submit.add_argument("--executor", choices=queue.EXECUTORS, default="local",
                        help="where the jobs run: local workers (default) or Slurm")
    slurm_group = submit.add_argument_group(
        "Slurm (with --executor slurm; defaults from <home>/slurm.json)")
    for flag, kind in SLURM_FLAGS.items():
        slurm_group.add_argument(f"--{flag}", type=kind, dest=f"slurm_{flag.replace('-', '_')}",
                                 help={"mem": "memory per job: 4096 (MiB), 4096M or 16G",
                                       "time": "time limit: minutes, H:MM:SS or D-HH:MM:SS"}
                                 .get(flag))
    submit.set_defaults(func=cmd_submit)

    lst = rsub.add_parser("list", help="the job queue")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--state", choices=queue.STATES, default=None)
    lst.set_defaults(func=cmd_list)

    for name, helptext in (("cancel", "cancel a queued or running job (scancel on Slurm)"),
                           ("retry", "queue a failed or cancelled job again (resubmit on Slurm)"),
                           ("logs", "print a job's log (and Slurm's output)")):
        p = rsub.add_parser(name, help=helptext)
        p.add_argument("id", type=int)
        p.set_defaults(func=globals()[f"cmd_{name}"])

    sync = rsub.add_parser("sync", help="update Slurm jobs from Slurm; register finished runs")
    sync.set_defaults(func=cmd_sync)

    worker = sub.add_parser("worker", help="run queued jobs (one worker per GPU, or the CPU)")
    worker.add_argument("--gpus", default=None, help="comma-separated GPU indices, e.g. 0,1")
    worker.add_argument("--once", action="store_true", help="exit when the queue is empty")
    worker.add_argument("--jobs-per-gpu", type=int, default=1, dest="jobs_per_gpu",
                        help="jobs run side by side on each GPU (on a machine without one: CPU"
                        " workers)")
    worker.add_argument("--heartbeat", type=float, default=5.0, help="seconds between heartbeats")
    worker.add_argument("--stale", type=float, default=120.0,
                        help="re-queue running jobs whose heartbeat is older than this (s)")
    worker.add_argument("--idle-exit", type=float, default=None, dest="idle_exit",
                        help="exit after this many idle seconds (default: never)")
    worker.add_argument("--device-label", default=None, dest="device_label",
                        help=argparse.SUPPRESS)
    worker.set_defaults(func=cmd_worker)


def _grid_from_args(args: argparse.Namespace) -> spec.GridSpec:
    if args.spec:
        return spec.load_grid(args.spec)
    return spec.grid_from_fields({k: getattr(args, k) for k in (
        "task", "data", "model", "size", "pretrain_seed", "finetune_seeds", "checkpoints",
        "epochs", "learning_rate", "batch_size", "max_seq_length", "warmup",
        "max_train_examples", "max_eval_examples", "intermediate_task", "intermediate_data",
        "prune")}, "command line")


def cmd_submit(store, args: argparse.Namespace) -> int:
    grid = _grid_from_args(args)
    jobs = grid.expand()
    missing = plan.missing_jobs(store, grid)
    active = queue.active_keys(store)
    new = [j for j in missing if j.key not in active]
    print(f"{len(jobs)} jobs in the grid: {len(jobs) - len(missing)} already in the store,"
          f" {len(missing) - len(new)} already queued or running, {len(new)} to queue")
    if args.dry_run:
        for job in new:
            print(f"  would queue {job.task} {job.size} pretrain_seed={job.pretrain_seed}"
                  f" finetune_seed={job.finetune_seed} model={job.model}")
        return 0
    if args.executor == "slurm":
        options = _slurm_options(store, args)
        ids = slurm.submit(store, new, options)
        for job_id in ids:
            job = queue.get(store, job_id)
            print(f"  submitted job {job_id} to Slurm as {job.slurm_id}: {job.spec.task}"
                  f" {job.spec.size} pretrain_seed={job.spec.pretrain_seed}"
                  f" finetune_seed={job.spec.finetune_seed}")
        return 0
    ids = queue.submit(store, new)
    for job_id, job in zip(ids, new):
        print(f"  queued job {job_id}: {job.task} {job.size} pretrain_seed={job.pretrain_seed}"
              f" finetune_seed={job.finetune_seed}")
    if args.start_workers and ids:
        from seedlab.runs.executor import default_executor

        workers = default_executor().start(store)
        print(f"{len(workers)} worker(s) running: {', '.join(workers['device'])}")
    return 0


def _slurm_options(store, args: argparse.Namespace) -> slurm.SlurmOptions:
    """The home's Slurm defaults with this command's flags applied."""
    given = {flag.replace("-", "_"): getattr(args, f"slurm_{flag.replace('-', '_')}")
             for flag in SLURM_FLAGS}
    given = {k: v for k, v in given.items() if v is not None}
    return slurm.parse_options(given, "command line", base=slurm.load_config(store.home))


def _text(value) -> str:
    """A table cell as text: missing values (None, or NaN from pandas) are blank."""
    return "" if value is None or pd.isna(value) else str(value)


def sync_slurm(store) -> None:
    """Bring Slurm jobs up to date (and register their finished runs) when there are any;
    a Slurm that does not answer is said on stderr, the listing goes on."""
    if (queue.jobs(store)["executor"] == "slurm").any():
        try:
            slurm.sync(store)
        except slurm.SlurmError as exc:
            print(f"warning: Slurm jobs not updated: {exc}", file=sys.stderr)


def cmd_list(store, args: argparse.Namespace) -> int:
    reap(store)
    sync_slurm(store)
    frame = queue.jobs(store, state=args.state)
    if args.json:
        print(frame.drop(columns=["spec"]).to_json(orient="records", indent=2))
        return 0
    if frame.empty:
        print("no jobs")
        return 0
    print(f"{'id':>5}  {'state':<10}{'task':<18}{'size':<8}{'pretrain':<10}{'ft':>5}"
          f"  {'slurm':<22}{'progress':<26}message")
    for r in frame.itertuples():
        prog = ""
        if r.state == "running" and pd.notna(r.total) and r.total:
            eta = f", ETA {r.eta_s:.0f}s" if pd.notna(r.eta_s) else ""
            prog = f"{_text(r.phase)} {int(r.step or 0)}/{int(r.total)}{eta}"
        elif r.state == "running":
            prog = _text(r.phase)
        where = f"{_text(r.slurm_id)} {_text(r.slurm_state)}".strip() if r.executor == "slurm" \
            else ""
        print(f"{r.id:>5}  {r.state:<10}{r.task:<18}{r.size:<8}{r.pretrain_seed:<10}"
              f"{r.finetune_seed:>5}  {where:<21} {prog:<25} {_text(r.message)}".rstrip())
    return 0


def cmd_sync(store, args: argparse.Namespace) -> int:
    changed = slurm.sync(store)
    for job_id, state in changed:
        print(f"job {job_id}: {state}")
    print(f"{len(changed)} job(s) changed")
    return 0


def cmd_cancel(store, args: argparse.Namespace) -> int:
    state = slurm.cancel(store, args.id)
    print(f"job {args.id}: {state}")
    return 0


def cmd_retry(store, args: argparse.Namespace) -> int:
    state = slurm.retry(store, args.id)
    job = queue.get(store, args.id)
    where = f" (Slurm {job.slurm_id})" if job.executor == "slurm" else ""
    print(f"job {args.id}: {state}{where}")
    return 0


def cmd_logs(store, args: argparse.Namespace) -> int:
    text = slurm.logs(store, args.id)
    if not text:
        print(f"job {args.id} has no log yet (it has not started)")
        return 0
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_worker(store, args: argparse.Namespace) -> int:
    from seedlab.runs.executor import local_gpus, slot_threads
    from seedlab.runs.worker import Worker, WorkerConfig

    if args.jobs_per_gpu < 1:
        print("--jobs-per-gpu must be at least 1", file=sys.stderr)
        return 2
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    if gpus is None and args.device_label is None:
        gpus = local_gpus()
    slots = [g for g in (gpus or ["cpu"]) for _ in range(args.jobs_per_gpu)]
    if len(slots) > 1:
        # One process per slot, each seeing only its own GPU (and its share of the cores).
        children = []
        for g in slots:
            env = dict(os.environ, CUDA_VISIBLE_DEVICES="" if g == "cpu" else g,
                       **slot_threads(args.jobs_per_gpu))
            command = [sys.executable, "-m", "seedlab", "--home", str(store.home), "worker",
                       *(["--device-label", "cpu"] if g == "cpu" else ["--gpus", g]),
                       "--heartbeat", str(args.heartbeat), "--stale", str(args.stale)]
            if args.once:
                command.append("--once")
            if args.idle_exit is not None:
                command += ["--idle-exit", str(args.idle_exit)]
            children.append(subprocess.Popen(command, env=env))
            time.sleep(0.5)
        return max(child.wait() for child in children)
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[0]
        device = f"cuda:{gpus[0]}"
    else:
        device = args.device_label or "cpu"
    config = WorkerConfig(device=device, heartbeat_s=args.heartbeat, stale_s=args.stale,
                          once=args.once, idle_exit_s=args.idle_exit)
    worker = Worker(store, config)
    print(f"worker {worker.id} on {device}: waiting for jobs", flush=True)
    n = worker.run()
    for job_id, state in worker.ran:
        print(f"job {job_id}: {state}", flush=True)
    print(f"worker {worker.id}: ran {n} job(s), exiting", flush=True)
    return 0
