"""The comparison of several runs: the study's figures (epoch-time spread, test-set time,
single-image time, accuracy and loss per epoch) plus energy per epoch and per training image, the
headline table, and the findings side by side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..traces.reader import RunData
from .findings_view import findings_html, run_findings
from .page import fmt, notes_html, page, plot_title, table
from .run_sections import pretty_source
from .table import energy_per_epoch
from .text import esc, plotly_text

PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d", "#ff9da6", "#bab0ac")


def run_labels(runs: Sequence[RunData]) -> list[str]:
    """One distinct label per run (the run directory's name is added where labels repeat)."""
    labels = [r.label for r in runs]
    out = []
    for run, label in zip(runs, labels):
        out.append(f"{label} ({run.path.name})" if labels.count(label) > 1 else label)
    return out


def _metric(run: RunData, col: str, scale: float = 1.0) -> tuple[list[int], list[float | None]]:
    m = run.metrics
    if m.empty or col not in m or "epoch" not in m:
        return [], []
    m = m.sort_values("epoch")
    return m["epoch"].astype(int).tolist(), [None if pd.isna(v) else float(v) * scale for v in m[col]]


def _epoch_figure(runs: Sequence[RunData], labels: list[str]) -> dict[str, Any] | None:
    traces = []
    for i, (run, label) in enumerate(zip(runs, labels)):
        _, secs = _metric(run, "epoch_s")
        secs = [s for s in secs if s is not None]
        if secs:
            traces.append(
                {
                    "type": "box",
                    "y": secs,
                    "name": plotly_text(label),
                    "boxpoints": "all",
                    "jitter": 0.35,
                    "pointpos": 0,
                    "marker": {"color": PALETTE[i % len(PALETTE)], "size": 5},
                    "hovertemplate": "%{y:.3f} s<extra>%{fullData.name}</extra>",
                }
            )
    if not traces:
        return None
    return {
        "data": traces,
        "layout": {
            "height": 320,
            "margin": {"l": 60, "r": 20, "t": 40, "b": 80},
            "showlegend": False,
            "yaxis": {"title": {"text": "training epoch (s)"}, "rangemode": "tozero"},
            "annotations": [plot_title("Epoch time per run (each epoch a point)", 0.5)],
        },
    }


def _inference_figure(runs: Sequence[RunData], labels: list[str]) -> dict[str, Any] | None:
    names = [plotly_text(x) for x in labels]
    s = [r.record.summary for r in runs]
    test = [x.get("test_ms") for x in s]
    single = [x.get("single_ms_per_image") for x in s]
    ips = [x.get("images_per_s_median") for x in s]
    if all(v is None for v in test + single + ips):
        return None
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(runs))]
    traces = [
        {
            "type": "bar",
            "x": names,
            "y": ips,
            "marker": {"color": colors},
            "xaxis": "x",
            "yaxis": "y",
            "hovertemplate": "%{y:,.0f} images/s<extra></extra>",
        },
        {
            "type": "bar",
            "x": names,
            "y": test,
            "marker": {"color": colors},
            "xaxis": "x2",
            "yaxis": "y2",
            "hovertemplate": "%{y:,.1f} ms<extra></extra>",
        },
        {
            "type": "bar",
            "x": names,
            "y": single,
            "marker": {"color": colors},
            "xaxis": "x3",
            "yaxis": "y3",
            "hovertemplate": "%{y:.4f} ms per image<extra></extra>",
        },
    ]
    return {
        "data": traces,
        "layout": {
            "height": 340,
            "margin": {"l": 60, "r": 20, "t": 40, "b": 100},
            "showlegend": False,
            "xaxis": {"domain": [0, 0.28]},
            "yaxis": {"title": {"text": "images/s (median epoch)"}},
            "xaxis2": {"domain": [0.36, 0.64], "anchor": "y2"},
            "yaxis2": {"anchor": "x2", "title": {"text": "ms, whole test set"}},
            "xaxis3": {"domain": [0.72, 1], "anchor": "y3"},
            "yaxis3": {"anchor": "x3", "title": {"text": "ms per image"}},
            "annotations": [
                plot_title("Training throughput", 0.14),
                plot_title("Test set, batched", 0.5),
                plot_title("Single-image inference", 0.86),
            ],
        },
    }


def _curves_figure(runs: Sequence[RunData], labels: list[str]) -> dict[str, Any] | None:
    traces = []
    for i, (run, label) in enumerate(zip(runs, labels)):
        color = PALETTE[i % len(PALETTE)]
        for col, axis, dash, what, scale in (
            ("val_acc", "1", "solid", "validation", 100),
            ("train_acc", "1", "dot", "train", 100),
            ("val_loss", "2", "solid", "validation", 1),
            ("train_loss", "2", "dot", "train", 1),
        ):
            x, y = _metric(run, col, scale)
            if not x:
                continue
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "x": x,
                    "y": y,
                    "name": plotly_text(f"{label} {what}"),
                    "legendgroup": str(i),
                    "showlegend": axis == "1",
                    "line": {"color": color, "dash": dash},
                    "marker": {"size": 4},
                    "xaxis": "x" if axis == "1" else "x2",
                    "yaxis": "y" if axis == "1" else "y2",
                }
            )
    if not traces:
        return None
    return {
        "data": traces,
        "layout": {
            "height": 360,
            "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
            "legend": {"orientation": "h", "y": -0.2},
            "xaxis": {"domain": [0, 0.46], "title": {"text": "epoch"}},
            "yaxis": {"title": {"text": "accuracy (%)"}},
            "xaxis2": {"domain": [0.54, 1], "anchor": "y2", "title": {"text": "epoch"}},
            "yaxis2": {"anchor": "x2", "title": {"text": "loss"}},
            "annotations": [
                plot_title("Accuracy per epoch (solid: validation, dotted: train)", 0.23),
                plot_title("Loss per epoch", 0.77),
            ],
        },
    }


def _energy_figure(runs: Sequence[RunData], labels: list[str]) -> dict[str, Any] | None:
    per_epoch = [energy_per_epoch(r) for r in runs]
    sources = sorted({k for e in per_epoch for k in e})
    if not sources:
        return None
    names = [plotly_text(x) for x in labels]
    traces = []
    for j, source in enumerate(sources):
        color = PALETTE[j % len(PALETTE)]
        j_epoch = [e.get(source) for e in per_epoch]
        per_image = []
        for run, e in zip(runs, per_epoch):
            n = run.record.dataset.train if run.record.dataset else 0
            per_image.append(e[source] * 1e3 / n if source in e and n else None)
        label = plotly_text(f"{pretty_source(source)} ({source})")
        traces.append(
            {
                "type": "bar",
                "x": names,
                "y": j_epoch,
                "name": label,
                "legendgroup": source,
                "marker": {"color": color},
                "xaxis": "x",
                "yaxis": "y",
                "hovertemplate": "%{y:,.1f} J per epoch<extra>%{fullData.name}</extra>",
            }
        )
        traces.append(
            {
                "type": "bar",
                "x": names,
                "y": per_image,
                "name": label,
                "legendgroup": source,
                "showlegend": False,
                "marker": {"color": color},
                "xaxis": "x2",
                "yaxis": "y2",
                "hovertemplate": "%{y:.4f} mJ per image<extra>%{fullData.name}</extra>",
            }
        )
    return {
        "data": traces,
        "layout": {
            "height": 380,
            "margin": {"l": 60, "r": 20, "t": 40, "b": 100},
            "barmode": "group",
            "legend": {"orientation": "h", "y": -0.35},
            "xaxis": {"domain": [0, 0.46]},
            "yaxis": {"title": {"text": "J per training epoch"}},
            "xaxis2": {"domain": [0.54, 1], "anchor": "y2"},
            "yaxis2": {"anchor": "x2", "title": {"text": "mJ per training image"}},
            "annotations": [
                plot_title("Energy per epoch, by power source", 0.23),
                plot_title("Energy per training image", 0.77),
            ],
        },
    }


def _study_table(runs: Sequence[RunData], labels: list[str]) -> str:
    per_epoch = [energy_per_epoch(r) for r in runs]
    sources = sorted({k for e in per_epoch for k in e})
    headers = [
        "run",
        "device",
        "epochs",
        "epoch s min",
        "median",
        "max",
        "images/s",
        "test set ms",
        "single image ms",
        "final val acc",
        "test acc",
    ]
    headers += [f"J/epoch {pretty_source(s)}" for s in sources]
    rows = []
    for run, label, energy in zip(runs, labels, per_epoch):
        s = run.record.summary

        def c(key: str, spec: str, scale: float = 1.0, unit: str = "", s: dict[str, Any] = s) -> tuple[str, Any]:
            v = s.get(key)
            return fmt(v, spec, unit, scale), (float(v) * scale if isinstance(v, (int, float)) else None)

        row = [
            (esc(label), label),
            (esc(run.record.backend.device_name), None),
            c("epochs_completed", ",.0f"),
            c("epoch_s_min", ",.2f"),
            c("epoch_s_median", ",.2f"),
            c("epoch_s_max", ",.2f"),
            c("images_per_s_median", ",.0f"),
            c("test_ms", ",.1f"),
            c("single_ms_per_image", ",.4f"),
            c("final_val_acc", ".1f", 100, " %"),
            c("test_accuracy", ".1f", 100, " %"),
        ]
        row += [(fmt(energy.get(src), ",.1f"), energy.get(src)) for src in sources]
        rows.append(row)
    return table(headers, rows)


def render_comparison(runs: Sequence[RunData]) -> str:
    labels = run_labels(runs)
    figures: dict[str, Any] = {}
    sections = []
    missing: list[str] = []
    for fig_id, builder, title, why in (
        ("fig-cmp-epochs", _epoch_figure, "Epoch time", "no run has per-epoch metrics"),
        (
            "fig-cmp-inference",
            _inference_figure,
            "Throughput and inference",
            "no run has throughput or inference timings",
        ),
        ("fig-cmp-curves", _curves_figure, "Accuracy and loss", "no run has per-epoch accuracy or loss"),
        (
            "fig-cmp-energy",
            _energy_figure,
            "Energy",
            "no run measured power (telemetry with a power source: powermetrics, nvml or rapl)",
        ),
    ):
        fig = builder(runs, labels)
        if fig is None:
            sections.append(f"<section><h2>{esc(title)}</h2><p class='muted'>{esc(why)}.</p></section>")
        else:
            figures[fig_id] = fig
            sections.append(f"<section><h2>{esc(title)}</h2><div class='plot' id='{fig_id}'></div></section>")

    findings = []
    for run, label in zip(runs, labels):
        items, why_none = run_findings(run)
        findings.append(f"<div><h3>{esc(label)}</h3>{findings_html(items, why_none, compact=True)}</div>")
    run_rows = []
    for run, label in zip(runs, labels):
        notes = list(run.notes)
        run_rows.append(
            f"<tr><td>{esc(label)}</td><td class='mono'>{esc(run.path)}</td>"
            f"<td>{esc(run.record.backend.device_name)}</td>"
            f"<td>{esc(run.record.status)}</td><td>{notes_html(notes, 'notes small') if notes else ''}</td></tr>"
        )
        missing += [f"{label}: {n}" for n in notes]
    body = f"""
<header><h1>cnnprof comparison <span class='sub'>{len(runs)} runs</span></h1></header>
{("<section class='missing'><h2>What is missing</h2>" + notes_html(missing) + "</section>") if missing else ""}
<section><h2>Runs</h2><table class='data'><thead><tr><th>run</th><th>directory</th><th>device</th><th>status</th>
<th>notes</th></tr></thead><tbody>{"".join(run_rows)}</tbody></table></section>
<section><h2>Headline figures</h2>{_study_table(runs, labels)}</section>
{"".join(sections)}
<section><h2>Findings side by side</h2><div class='compare-findings'>{"".join(findings)}</div></section>
"""
    return page(
        f"cnnprof comparison of {len(runs)} runs", body, {"kind": "compare", "figures": figures, "timeline": None}
    )
