"""`cnnprof bench`: the study's comparison on every backend here, one process per run.

Each (backend, loop) runs as its own `cnnprof run` process, so one framework's state (allocator
caches, threads, compiled kernels) cannot leak into another's timing. Finished runs are kept when
a later one fails or the user presses Ctrl-C, and the comparison is written from those.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from rich.markup import escape

from .errors import UserError
from .models.backends import probe_backend
from .terminal import console


@dataclass
class BenchResult:
    bench_dir: Path
    runs: list[Path] = field(default_factory=list)  # complete run directories, in order
    skipped: list[str] = field(default_factory=list)  # "<backend>: <reason>"
    failed: list[str] = field(default_factory=list)
    interrupted: bool = False


def parse_list(text: str, valid: tuple[str, ...], what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in valid]
    if unknown or not items:
        raise UserError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(valid)}"
        )
    return items


def run_in_process(run_args: list[str], out: Path) -> tuple[int, Path | None, str]:
    """`cnnprof run RUN_ARGS --out OUT` as its own process: (exit code, the run directory it made
    under OUT or None, its stderr)."""
    command = [sys.executable, "-m", "cnnprof.cli", "run", *run_args, "--out", str(out)]
    proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_dirs = sorted(p for p in out.glob("*") if p.is_dir()) if out.exists() else []
    return proc.returncode, (run_dirs[-1] if run_dirs else None), proc.stderr or ""


def run_bench(backends: list[str], loops: list[str], run_args: list[str], out_root: Path) -> BenchResult:
    """Runs every available backend x loop; `run_args` are passed on to each `cnnprof run`."""
    bench_dir = out_root / f"{datetime.now():%Y%m%d-%H%M%S}-bench"
    try:
        bench_dir.mkdir(parents=True, exist_ok=False)
    except OSError as exc:
        raise UserError(
            f"cannot create {bench_dir}: {exc.strerror or exc}; pass a writable folder with --out"
        ) from None
    result = BenchResult(bench_dir)
    plan: list[tuple[str, str]] = []
    for backend in backends:
        status = probe_backend(backend)
        if status.available:
            plan += [(backend, loop) for loop in loops]
        else:
            result.skipped.append(f"{backend}: {status.reason}")
            console.print(f"[yellow]skip[/] {backend}: {escape(status.reason)} (fix: {escape(status.fix)})")
    for n, (backend, loop) in enumerate(plan, 1):
        console.print(f"\\[{n}/{len(plan)}] {backend} {loop} ...")
        started = time.monotonic()
        try:
            returncode, run_dir, stderr = run_in_process(
                ["--backend", backend, "--loop", loop, *run_args], bench_dir / f"{backend}-{loop}"
            )
        except KeyboardInterrupt:
            result.interrupted = True
            console.print("[yellow]interrupted[/]: keeping the finished runs")
            break
        elapsed = time.monotonic() - started
        if returncode == 0 and run_dir is not None:
            result.runs.append(run_dir)
            console.print(
                f"\\[{n}/{len(plan)}] {backend} {loop}: [green]complete[/] in {elapsed:.0f} s "
                f"-> {escape(str(run_dir))}"
            )
        elif returncode == 130:
            result.interrupted = True
            console.print(
                f"\\[{n}/{len(plan)}] {backend} {loop}: [yellow]interrupted[/]; keeping the finished runs"
            )
            break
        else:
            last = stderr.strip().splitlines()[-1:] or ["no output"]
            result.failed.append(f"{backend} {loop}: {last[0]}")
            console.print(f"\\[{n}/{len(plan)}] {backend} {loop}: [red]failed[/] ({escape(last[0])})")
    return result


def write_bench_outputs(result: BenchResult) -> tuple[Path | None, Path]:
    """The comparison report (when there is a run) and bench.md."""
    from .reports.html import build_report
    from .reports.table import study_table
    from .traces.reader import RunData

    runs = [RunData(path) for path in result.runs]
    report = build_report(result.runs, result.bench_dir / "compare.html") if result.runs else None
    lines = ["# cnnprof bench", "", f"Runs in `{result.bench_dir}`.", ""]
    lines.append(study_table(runs) if runs else "No run finished.\n")
    for title, items in (("Skipped", result.skipped), ("Failed", result.failed)):
        if items:
            lines += ["", f"{title}:", ""] + [f"- {item}" for item in items]
    if result.interrupted:
        lines += ["", "Interrupted: the table holds the runs that finished before Ctrl-C."]
    markdown = result.bench_dir / "bench.md"
    markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report, markdown

