"""`cnnprof profile` as a distributed job.

Two ways in, one layout (traces/job.py):

* `cnnprof profile --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT] -- SCRIPT ARGS`: this
  process makes the job directory and runs PyTorch's own launcher,
  `python -m torch.distributed.run ... --module cnnprof.cli profile --job-dir JOB ... -- SCRIPT ARGS`
  (`--standalone` on one node: torchrun picks a free port), waits for it, then records the
  launcher's exit code in job.json, so that a rank killed before it could write is `failed`.
* `torchrun ... -m cnnprof profile -- SCRIPT ARGS`: each rank finds torchrun's variables
  (profiler/distributed.py) and joins the job directory named after what the ranks of a host share
  (the launcher agent's start time and pid, or torchrun's run id); the last rank to end writes the
  job's report. With several nodes pass the same `--job-dir` on a shared file system.

Each rank's run directory is `JOB/rank-<RANK>` (`rank-<RANK>-restart<K>` after an elastic restart,
kept apart: the job view reads the first attempt).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import cnnprof

from ..errors import UserError
from ..traces import job
from .distributed import RankInfo
from .rundir import make_run_dir


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def default_job_dir(out_root: Path, label: str, rank: RankInfo) -> Path:
    """The job directory the ranks of one torchrun agent agree on without talking to each other."""
    import psutil

    agent = os.getppid()
    try:
        started = datetime.fromtimestamp(psutil.Process(agent).create_time())
    except (psutil.Error, OSError):
        started = datetime.now()
    tag = rank.run_id[:8] if rank.run_id not in ("", "none") else str(agent)
    return out_root / f"{started.strftime('%Y%m%d-%H%M%S')}-{_safe(label)}-job-{tag}"


def make_rank_dir(job_dir: Path, rank: RankInfo) -> Path:
    name = job.rank_dir_name(rank.rank) + (f"-restart{rank.restart_count}" if rank.restart_count else "")
    path = job_dir / name
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        raise UserError(f"{path} exists already (an earlier job?); pass a new --job-dir or --out") from None
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; pass a writable --job-dir or --out") from None
    return path


def launcher_command(
    job_dir: Path,
    nproc_per_node: int,
    nnodes: int,
    rdzv_endpoint: str | None,
    rank_args: list[str],
    target: list[str],
) -> list[str]:
    """torch.distributed.run running `cnnprof.cli profile` in every rank; `target` is
    `["--", SCRIPT, *ARGS]` or `["-m", MODULE, *ARGS]`."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc_per_node)]
    cmd += ["--nnodes", str(nnodes)]
    if rdzv_endpoint:
        cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint]
    else:
        cmd += ["--standalone"]
    return [*cmd, "--module", "cnnprof.cli", "profile", "--job-dir", str(job_dir), *rank_args, *target]


def launch_job(
    out_root: Path,
    label: str,
    job_dir: Path | None,
    nproc_per_node: int,
    nnodes: int,
    rdzv_endpoint: str | None,
    rank_args: list[str],
    target: list[str],
) -> tuple[Path, int]:
    """Runs the job under torchrun; returns the job directory and the launcher's exit code."""
    if nproc_per_node < 1 or nnodes < 1:
        raise UserError("--nproc-per-node and --nnodes must be at least 1")
    if nnodes > 1 and not rdzv_endpoint:
        raise UserError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the same on every node) and a shared --job-dir")
    if job_dir is None:
        job_dir = make_run_dir(out_root, f"{label}-job")
    cmd = launcher_command(job_dir, nproc_per_node, nnodes, rdzv_endpoint, rank_args, target)
    job.update_job(
        job_dir,
        lambda r: r.update(
            launcher="cnnprof",
            world_size=r.get("world_size") or nproc_per_node * nnodes,
            nproc_per_node=nproc_per_node,
            nnodes=nnodes,
            argv=sys.argv,
            launcher_command=cmd,
        ),
    )
    env = dict(os.environ)
    # The ranks must run this very cnnprof, installed or not.
    root = str(Path(cnnprof.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    process = subprocess.Popen(cmd, env=env)
    while True:
        try:
            code = process.wait()
            break
        except KeyboardInterrupt:  # Ctrl-C reached the ranks too; wait until they have written
            continue
    _end_job(job_dir, code)
    return job_dir, code


def _end_job(job_dir: Path, code: int) -> None:
    def change(record: dict) -> None:
        record["launcher_exit_code"] = code
        for entry in record.get("ranks", {}).values():
            if entry.get("status") == "running":
                entry.update(status="failed", error="the rank ended without recording its outcome (killed?)")

    job.update_job(job_dir, change)
