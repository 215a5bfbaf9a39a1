"""The report of a job directory (traces/job.py): the job's findings and verdict, the per-rank
step-time table, every rank's lane group on one time axis (rank_lanes.py), and each rank's own
findings. Built from the pieces of the single-run report (html.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..traces.job import JobData
from ..traces.reader import RunData
from .diagnosis.job import JobDiagnosis, diagnose_job
from .diagnosis.job_context import JobContext
from .diagnosis.rank_imbalance import ddp_waits
from .findings import Diagnosis
from .findings_view import findings_html, verdict_html
from .html import write_page
from .page import card, fmt, notes_html, page, table
from .rank_lanes import rank_lane
from .text import esc
from .timeline.layout import assemble


def _verdict_name(diagnosis: JobDiagnosis) -> str:
    """The verdict rank's verdict where the run diagnosis gives one, else which rank it is taken from."""
    if diagnosis.verdict_rank is None:
        return "no rank recorded"
    verdict = diagnosis.verdict
    return f"{verdict.id} (rank {diagnosis.verdict_rank})" if verdict is not None else f"rank {diagnosis.verdict_rank}"


def _verdict_section(diagnosis: JobDiagnosis) -> str:
    if diagnosis.verdict is None:
        return "<p class='muted'>no verdict: the rank's diagnosis did not run</p>"
    return verdict_html(Diagnosis(diagnosis.verdict, []))


def _verdict_text(diagnosis: JobDiagnosis) -> str:
    return f"{_verdict_name(diagnosis)}: {diagnosis.verdict_why}"


def _shares_telemetry(run: RunData, note: str) -> bool:
    """A rank whose host's local rank 0 ran the sampler has no telemetry of its own, by design."""
    dist = run.record.section("distributed")
    return note.startswith("no telemetry") and dist.get("local_rank") != dist.get("telemetry_from_local_rank", 0)


def _steps_range(ctx: JobContext) -> list[float] | None:
    """The first view: the steady-state steps of every rank (start-up and imports left of it)."""
    windows = [w for v in ctx.ranks.values() for w in v.steps]
    if not windows:
        return None
    lo, hi = min(s for s, _ in windows), max(e for _, e in windows)
    pad = (hi - lo) * 0.05
    return [max(lo - pad, 0) / 1e9, (hi + pad) / 1e9]


def step_rows(ctx: JobContext) -> list[list[tuple[str, Any]]]:
    rows = []
    waits = ddp_waits(ctx.with_steps)
    for rank, view in ctx.ranks.items():
        run = view.run
        n = len(view.steps)
        in_backward = waits.get(rank)
        busy = view.median_busy_s - (in_backward or 0.0) if n else None
        rows.append(
            [
                (esc(rank), rank),
                (esc(ctx.job.host_of(rank) or "?"), 0),
                (esc(run.record.status), 0),
                (f"{n:,}", n),
                (fmt(view.median_step_s if n else None, ",.1f", scale=1e3), view.median_step_s),
                (fmt(busy, ",.1f", scale=1e3), busy or 0.0),
                (fmt(view.median_comm_s if n else None, ",.1f", scale=1e3), view.median_comm_s),
                (fmt(in_backward, ",.1f", scale=1e3), in_backward or 0.0),
                (fmt(ctx.bytes_per_step(view) / 1e6, ",.2f"), ctx.bytes_per_step(view)),
                (esc(view.step_source), 0),
            ]
        )
    return rows


def _timeline(ctx: JobContext, notes: list[str]) -> dict[str, Any] | None:
    seen: set[str] = set()
    lanes = []
    for rank, view in ctx.ranks.items():
        lane = rank_lane(view, ctx.job.host_of(rank) or "?", notes, seen)
        if lane is not None:
            lanes.append(lane)
    if not lanes:
        return None
    t_end = max(
        max((int(v.spans["end_ns"].max()) for v in ctx.ranks.values() if not v.spans.empty), default=0) / 1e9, 1e-3
    )
    return assemble(lanes, t_end, [])


def render_job(job: JobData) -> str:
    ctx = JobContext(job)
    diagnosis = diagnose_job(job)
    notes: list[str] = []
    figures: dict[str, Any] = {}
    figure = _timeline(ctx, notes)
    if figure is not None:
        figure["layout"]["xaxis"]["title"]["text"] = "seconds since the job's first rank started"
        steps = _steps_range(ctx)
        if steps is not None:
            figure["layout"]["xaxis"]["range"] = steps
        figures["job-timeline"] = figure
    missing = list(job.notes) + [
        f"rank {r}: {n}" for r, run in job.ranks.items() for n in run.notes if not _shares_telemetry(run, n)
    ]
    hosts = job.meta.get("hosts", {})
    cards = (
        "<div class='cards'>"
        + "".join(
            [
                card("status", esc(job.status)),
                card("world size", esc(job.world_size), f"{len(job.ranks)} rank directories"),
                card("hosts", esc(len(hosts)), esc(", ".join(hosts))),
                card("verdict", esc(_verdict_name(diagnosis)), esc(diagnosis.verdict_why)),
            ]
        )
        + "</div>"
    )
    headers = [
        "rank",
        "host",
        "status",
        "steady steps",
        "step ms",
        "work ms",
        "in collectives ms",
        "waiting in DDP backward ms",
        "MB sent / step",
        "steps from",
    ]
    per_rank = "".join(
        f"<h3>rank {esc(r)}</h3>{findings_html(fs, None, compact=True)}" for r, fs in diagnosis.per_rank.items()
    )
    timeline = (
        "<p class='muted'>One lane group per rank on the job's time axis: a slow rank's long work lines up "
        "with the others' long collectives.</p><div class='plot' id='job-timeline'></div>" + notes_html(notes, "drawn")
        if figure is not None
        else "<p class='muted'>Nothing to draw: no rank recorded spans.</p>"
    )
    body = f"""
<header><h1>cnnprof job report <span class='sub'>{esc(job.path.name)}</span></h1>
<p class='muted mono'>launcher {esc(job.meta.get("launcher"))} · status {esc(job.status)}</p></header>
{("<section class='missing'><h2>What is missing</h2>" + notes_html(missing) + "</section>") if missing else ""}
<section><h2>Summary</h2>{cards}</section>
<section><h2>Verdict</h2><p class='muted'>Taken from {esc(diagnosis.verdict_why)}.</p>
{_verdict_section(diagnosis)}</section>
<section><h2>Findings of the job</h2>{findings_html(diagnosis.findings, None)}</section>
<section><h2>Step time per rank</h2>{table(headers, step_rows(ctx))}
<p class='muted'>Medians over the steady-state steps. Ranks wait for each other in collectives, so their step
times agree; the work (step less collectives, accelerator syncs and the wait inside DDP's backward) shows which
rank the others wait for. DDP's gradient all-reduce runs in C++ inside the backward pass: a rank's backward
beyond the shortest rank's is counted as waiting there.</p></section>
<section><h2>Timeline</h2>{timeline}</section>
<section><h2>Findings per rank</h2>{per_rank or "<p class='muted'>no rank recorded</p>"}
<p class='muted'>A rank's full report:
<span class='mono'>cnnprof report {esc(job.path.name)}/rank-N</span></p></section>
"""
    return page(f"cnnprof job: {job.path.name}", body, {"kind": "job", "figures": figures, "timeline": None})


def build_job_report(job: JobData, out: Path | str) -> Path:
    return write_page(out, render_job(job))


def print_job_findings(job: JobData, console: Any, diagnosis: JobDiagnosis | None = None) -> None:
    """The job's findings as a table, then one line per rank finding, in the terminal."""
    from .diagnosis import diagnosis_table

    diagnosis = diagnosis or diagnose_job(job)
    for note in job.notes:
        console.print(f"note: {note}", markup=False)
    console.print(
        f"job {job.path.name}: {job.status}, {len(job.ranks)} of {job.world_size} ranks; the verdict is "
        f"{diagnosis.verdict_why}",
        markup=False,
    )
    if diagnosis.verdict is not None:
        console.print(diagnosis_table(Diagnosis(diagnosis.verdict, diagnosis.findings)), soft_wrap=False)
    for f in diagnosis.findings if diagnosis.verdict is None else []:
        console.print(f"[{f.severity}] {f.id}: {f.claim}", markup=False)
    if not diagnosis.findings:
        console.print("no job findings: no rank much slower than the others, communication not dominant")
    for rank, findings in diagnosis.per_rank.items():
        for f in findings:
            console.print(f"rank {rank}: [{f.severity}] {f.id}: {f.claim}", markup=False)
