"""The report of one run: what is missing, the summary, findings, the timeline with its range
panel, hot functions, epochs, inference and the run's details, on one page."""

from __future__ import annotations

from typing import Any

from ..traces.reader import RunData
from .findings_view import findings_html, run_diagnosis, verdict_html
from .page import notes_html, page
from .run_sections import details_section, epochs_section, hot_section, inference_section, summary_cards
from .text import esc


def render_run(run: RunData) -> str:
    from .timeline import build_timeline

    figures: dict[str, Any] = {}
    notes: list[str] = []
    try:
        timeline = build_timeline(run)
    except Exception as exc:  # a malformed table must not cost the rest of the report
        from .timeline import Timeline

        timeline = Timeline({}, {}, [f"no timeline: it could not be built ({type(exc).__name__}: {exc})"], [])
    diagnosis, why_none = run_diagnosis(run)
    findings = diagnosis.findings if diagnosis else []

    def guarded(what: str, build: Any, *args: Any) -> str:
        # One malformed table costs its own section, never the report.
        try:
            return build(*args)
        except Exception as exc:
            notes.append(f"{what} left out: it could not be built ({type(exc).__name__}: {exc})")
            return f"<p class='muted'>{esc(what)} could not be built; see the notes.</p>"

    cards = guarded("the summary", summary_cards, run)
    hot = guarded("the hot-function table", hot_section, run, notes)
    epochs = guarded("the per-epoch table", epochs_section, run, figures)
    inference = guarded("the inference table", inference_section, run, figures)
    details = guarded("the run details", details_section, run)
    missing = list(run.notes) + notes + timeline.absent

    if timeline.figure:
        figures["timeline"] = timeline.figure
        timeline_html = (
            "<p class='muted'>Drag across any lane (or the slider under it) to select a time range; "
            "double-click to see the whole run. The panel below follows the selection.</p>"
            "<div class='plot timeline' id='timeline'></div><div id='flame-legend' class='legend-row'></div>"
            + notes_html(timeline.notes, "drawn")
            + "<div id='selection' class='selection'><h3 id='sel-title'>Selected range</h3>"
            "<div class='sel-grid'><div><h4>Phases in the range</h4><div id='sel-phases'></div>"
            "<h4>Energy in the range</h4><div id='sel-energy'></div></div>"
            "<div><h4>Call tree of the range</h4><div id='sel-tree' class='tree'></div>"
            "<h4>Functions by self time</h4><div id='sel-funcs'></div></div></div></div>"
        )
    else:
        timeline_html = "<p class='muted'>Nothing to draw: the run recorded no spans, telemetry or samples.</p>"

    label = run.label
    body = f"""
<header><h1>cnnprof report <span class='sub'>{esc(label)}</span></h1>
<p class='muted mono'>{esc(run.path.resolve().name)} · {esc(run.record.started)} · \
status {esc(run.record.status)}</p></header>
{("<section class='missing'><h2>What is missing</h2>" + notes_html(missing) + "</section>") if missing else ""}
<section><h2>Summary</h2>{cards}</section>
<section><h2>Verdict</h2>{verdict_html(diagnosis) or notes_html([why_none or ""])}</section>
<section><h2>Findings</h2>{findings_html(findings, why_none)}</section>
<section><h2>Timeline</h2>{timeline_html}</section>
<section><h2>Hot functions</h2>{hot}</section>
<section><h2>Epochs</h2>{epochs}</section>
<section><h2>Inference</h2>{inference}</section>
<section><h2>Run details</h2>{details}</section>
"""
    data = {"kind": "run", "figures": figures, "timeline": timeline.data if timeline.figure else None}
    return page(f"cnnprof: {label}", body, data)
