"""The HTML report: one self-contained file that works offline (plotly.js, the page's script and
its style are inlined; nothing is fetched). One run directory gives the full report of that run;
several give the comparison (compare.py).

Every piece of user-controlled text (function and file names, argv, script names, error text) is
escaped for where it lands (text.py); the page's script builds its DOM with `textContent` only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import UserError
from ..traces import schema
from ..traces.reader import RunData
from .findings import Diagnosis, Finding
from .text import esc, plotly_text, script_json

SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2, "info": 3}

# The page may run its own inline scripts and styles, and nothing else: no fetch of any kind.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)


# -- public API ----------------------------------------------------------------------------------
def build_report(run_dirs: Sequence[Path | str], out: Path | str) -> Path:
    """Writes the report of one run directory, or the comparison of several, to `out`; returns it.
    Raises RunDirError (a UserError, one line) for a directory without a readable run.json."""
    if not run_dirs:
        raise UserError("no run directory given: pass one (report) or several (comparison)")
    runs = [RunData(p) for p in run_dirs]
    if len(runs) == 1:
        text = render_run(runs[0])
    else:
        from .compare import render_comparison

        text = render_comparison(runs)
    return write_page(out, text)


def write_page(out: Path | str, text: str) -> Path:
    """Writes a report page atomically (a reader never sees half of it); returns where."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise UserError(f"cannot write the report to {out}: {exc.strerror or exc}; pass another -o FILE") from None
    return out


def default_report_path(run_dirs: Sequence[Path | str]) -> Path:
    """Where `cnnprof report` writes without -o: report.html in the run directory, or
    comparison.html in the current directory for several runs."""
    if len(run_dirs) == 1:
        return Path(run_dirs[0]) / schema.REPORT
    return Path("comparison.html")


def report_command(run_dirs: Sequence[Path | str], out: Path | str | None = None) -> Path:
    """`cnnprof report RUN_DIR [RUN_DIR ...] [-o FILE]`: writes the report, returns where."""
    return build_report(run_dirs, out if out is not None else default_report_path(run_dirs))


# -- findings ------------------------------------------------------------------------------------
def run_diagnosis(run: RunData) -> tuple[Diagnosis | None, str | None]:
    """The diagnosis of a run, or why there is none (a rule that fails must not cost the report)."""
    from .diagnosis import diagnose

    try:
        return diagnose(run), None
    except Exception as exc:  # the report is worth more than the diagnosis
        return None, f"the diagnosis failed ({type(exc).__name__}: {exc}); the rest of the report is complete"


def run_findings(run: RunData) -> tuple[list[Finding], str | None]:
    diagnosis, why_none = run_diagnosis(run)
    return (diagnosis.findings if diagnosis else []), why_none


def verdict_html(diagnosis: Diagnosis | None) -> str:
    """The run's verdict: what bounds its steady-state step, and the step's time split."""
    if diagnosis is None:
        return ""
    v = diagnosis.verdict
    split = " · ".join(f"{esc(part)} {share:.0%}" for part, share in v.split.items() if share >= 0.005)
    facts = []
    if v.step_s is not None:
        facts.append(f"steady-state step {v.step_s * 1e3:,.2f} ms" + (f": {split}" if split else ""))
    if v.device_busy_pct is not None:
        facts.append(f"GPU busy {v.device_busy_pct:.0f}%")
    evidence = "".join(f"<li>{esc(e)}</li>" for e in v.evidence)
    return (
        f"<div class='verdict'><p><span class='badge'>{esc(v.id)}</span> <b>{esc(v.claim)}</b></p>"
        + "".join(f"<p class='mono'>{f}</p>" for f in facts)
        + f"<p class='muted'>judged on {esc(v.window)}</p>"
        + (f"<ul class='evidence'>{evidence}</ul>" if evidence else "")
        + f"<p class='fix'><b>What to do:</b> {esc(v.fix)}</p></div>"
    )


def findings_html(findings: list[Finding], why_none: str | None, compact: bool = False) -> str:
    if why_none:
        return f'<p class="muted">{esc(why_none)}</p>'
    if not findings:
        return (
            '<p class="muted">No bottleneck found by the rules '
            "(sync, input, device idle, lazy graph, warm-up, throttling).</p>"
        )
    parts = []
    for f in findings:
        sev = f.severity if f.severity in SEVERITY_ORDER else "info"
        evidence = "".join(f"<li>{esc(e)}</li>" for e in f.evidence)
        sites = ""
        if f.call_sites and not compact:
            # A site counts calls (sync hooks) or stack samples: its `unit` says which.
            units = [c.unit for c in f.call_sites]
            one_unit = len(set(units)) == 1
            rows = "".join(
                f"<tr><td class='mono'>{esc(c.file)}:{esc(c.line)}</td><td class='num'>{c.count:,}"
                f"{'' if one_unit else ' ' + esc(unit)}</td><td class='num'>{c.seconds:,.3f}</td></tr>"
                for c, unit in zip(f.call_sites, units)
            )
            sites = (
                f"<table class='sites'><thead><tr><th>call site</th><th>{esc(units[0]) if one_unit else 'count'}"
                f"</th><th>seconds</th></tr></thead><tbody>{rows}</tbody></table>"
            )
        body = (
            (f"<ul class='evidence'>{evidence}</ul>" if evidence else "")
            + (f"<p class='fix'><b>Fix:</b> {esc(f.fix)}</p>" if f.fix else "")
            + sites
        )
        parts.append(
            f"<details class='finding sev-{esc(sev)}'{' open' if sev == 'high' and not compact else ''}>"
            f"<summary><span class='badge sev-{esc(sev)}'>{esc(sev)}</span> <span class='fid'>{esc(f.id)}</span> "
            f"{esc(f.claim)}</summary>{body}</details>"
        )
    return "".join(parts)


# -- formatting ----------------------------------------------------------------------------------
def fmt(value: Any, spec: str = ",.2f", unit: str = "", scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return "–"
    try:
        return f"{float(value) * scale:{spec}}{unit}"
    except (TypeError, ValueError):
        return esc(value)


def card(title: str, value: str, sub: str = "", cls: str = "") -> str:
    return (
        f"<div class='card {cls}'><div class='card-title'>{esc(title)}</div>"
        f"<div class='card-value'>{value}</div><div class='card-sub'>{sub}</div></div>"
    )


def table(headers: list[str], rows: list[list[tuple[str, Any]]], cls: str = "", sortable: bool = True) -> str:
    """rows: cells as (html, sort key); headers are escaped here, cells must be escaped already."""
    th = "".join(f"<th{' data-sort' if sortable else ''}>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for html_text, key in row:
            num = isinstance(key, (int, float)) and not isinstance(key, bool)
            attr = f" data-v='{key!r}'" if num and math.isfinite(float(key)) else ""
            cells.append(f"<td{attr}{' class=num' if num else ''}>{html_text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<div class='scroll'><table class='data {cls}'><thead><tr>{th}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def energy_keys(run: RunData) -> list[str]:
    if run.metrics.empty:
        return []
    return sorted(c.removeprefix("energy_j.") for c in run.metrics.columns if c.startswith("energy_j."))


def pretty_source(key: str) -> str:
    names = {
        "powermetrics.combined_power_w": "package (CPU+GPU+ANE)",
        "powermetrics.cpu_power_w": "CPU",
        "powermetrics.gpu_power_w": "GPU",
        "powermetrics.ane_power_w": "ANE",
        "nvml.power_w": "GPU board",
    }
    return names.get(key, key.removesuffix("power_w").rstrip("._") or key)


# -- the run report ------------------------------------------------------------------------------
def summary_cards(run: RunData) -> str:
    rec, s = run.record, run.record.summary
    backend, dataset, model, cfg = rec.backend, rec.dataset, rec.model, rec.config
    cards = []
    if rec.script is not None:
        cards.append(
            card(
                "module" if rec.script.module else "script",
                f"<span class='mono'>{esc(rec.script.name)}</span>",
                esc(" ".join([rec.script.path, *rec.script.argv])[:200]),
            )
        )
    detected = " · detected from the script" if backend.detected else ""
    cards.append(
        card(
            "backend",
            esc(backend.name or cfg.get("backend") or "?"),
            esc(" ".join(x for x in (backend.framework, backend.framework_version) if x) + detected),
        )
    )
    cards.append(
        card(
            "device",
            esc(backend.device_name or backend.device or "?"),
            esc(backend.device if backend.device_name else rec.host.cpu_model),
        )
    )
    if dataset is not None:
        shape = "×".join(str(x) for x in dataset.shape)
        cards.append(
            card(
                "dataset",
                esc(dataset.name or cfg.get("dataset") or "?"),
                esc(f"{dataset.train:,} train · {dataset.validation:,} val · {dataset.test:,} test · {shape}"),
            )
        )
    if model is not None and model.parameters:
        cards.append(card("parameters", fmt(model.parameters, ",.0f"), esc(model.name)))
    if rec.kind == "train":
        planned = cfg.get("epochs")
        done = s.get("epochs_completed")
        sub = " · ".join(
            esc(x)
            for x in (
                f"loop {cfg['loop']}" if cfg.get("loop") else "",
                f"sync {cfg['sync_policy']}" if cfg.get("sync_policy") else "",
                f"batch {cfg['batch_size']}" if cfg.get("batch_size") else "",
            )
            if x
        )
        value = fmt(done, ",.0f") + (f" / {esc(planned)}" if planned and planned != done else "")
        cards.append(card("epochs", value, sub))
    if s.get("epoch_s_median") is not None:
        cards.append(
            card(
                "epoch time",
                fmt(s["epoch_s_median"], ",.2f", " s"),
                f"min {fmt(s.get('epoch_s_min'), ',.2f')} · max {fmt(s.get('epoch_s_max'), ',.2f')} s",
            )
        )
    if s.get("images_per_s_median") is not None:
        cards.append(card("training throughput", fmt(s["images_per_s_median"], ",.0f", " img/s"), "median over epochs"))
    if s.get("test_ms") is not None:
        cards.append(
            card(
                "test set",
                fmt(s["test_ms"], ",.0f", " ms"),
                f"{fmt(s.get('test_images'), ',.0f')} images batched · "
                f"accuracy {fmt(s.get('test_accuracy'), '.1f', ' %', 100)}",
            )
        )
    if s.get("single_ms_per_image") is not None:
        cards.append(
            card(
                "single image",
                fmt(s["single_ms_per_image"], ",.3f", " ms"),
                f"per image, {fmt(s.get('single_images'), ',.0f')} one by one",
            )
        )
    if s.get("final_val_acc") is not None:
        cards.append(
            card(
                "final validation",
                fmt(s["final_val_acc"], ".1f", " %", 100),
                f"loss {fmt(s.get('final_val_loss'), '.4f')}",
            )
        )
    # Energy of training, per power source, and per training image.
    images = (dataset.train if dataset else 0) * (s.get("epochs_completed") or 0)
    for key in sorted(k.removeprefix("train_energy_j.") for k in s if k.startswith("train_energy_j.")):
        joules = s.get(f"train_energy_j.{key}")
        if joules is None:
            continue
        per = f"{fmt(joules / images * 1e3, ',.3f')} mJ per training image" if images else ""
        cards.append(
            card(
                f"training energy: {pretty_source(key)}",
                fmt(joules, ",.1f", " J"),
                esc(key) + (f" · {per}" if per else ""),
                "energy",
            )
        )
    if rec.duration_ns:
        cards.append(card("wall time", fmt(rec.duration_ns / 1e9, ",.1f", " s"), esc(rec.started)))
    if rec.script is not None and rec.script.exit_code:
        cards.append(card("exit code", esc(rec.script.exit_code), "the script's sys.exit", "warn"))
    if rec.status != "complete":
        cards.append(card("status", esc(rec.status), esc(rec.error or ""), "warn"))
    return "<div class='cards'>" + "".join(cards) + "</div>"


def epochs_section(run: RunData, figures: dict[str, Any]) -> str:
    m = run.metrics
    if m.empty or "epoch" not in m:
        why = "a profiled script has no epochs" if run.record.kind != "train" else "no per-epoch metrics were recorded"
        return f"<p class='muted'>{esc(why)}.</p>"
    m = m.sort_values("epoch")
    ekeys = energy_keys(run)
    train_images = run.record.dataset.train if run.record.dataset else 0
    headers = ["epoch", "train loss", "train acc", "val loss", "val acc", "epoch s", "images/s", "peak memory MiB"]
    headers += [f"J {pretty_source(k)}" for k in ekeys]
    headers += [f"mJ/image {pretty_source(k)}" for k in ekeys] if train_images else []
    rows = []
    for _, r in m.iterrows():

        def cell(col: str, spec: str, scale: float = 1.0, r: Any = r) -> tuple[str, Any]:
            v = r.get(col)
            v = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
            return fmt(v, spec, "", scale), (v * scale if v is not None else None)

        row = [
            (esc(int(r["epoch"])), int(r["epoch"])),
            cell("train_loss", ".4f"),
            cell("train_acc", ".2f", 100),
            cell("val_loss", ".4f"),
            cell("val_acc", ".2f", 100),
            cell("epoch_s", ",.3f"),
            cell("images_per_s", ",.0f"),
            cell("peak_memory_mb", ",.0f"),
        ]
        row += [cell(f"energy_j.{k}", ",.2f") for k in ekeys]
        if train_images:
            row += [cell(f"energy_j.{k}", ",.4f", 1e3 / train_images) for k in ekeys]
        rows.append(row)
    epochs = m["epoch"].astype(int).tolist()

    def col(name: str, scale: float = 1.0) -> list[float | None]:
        if name not in m:
            return [None] * len(m)
        return [None if pd.isna(v) else float(v) * scale for v in m[name]]

    traces = [
        {
            "type": "bar",
            "x": epochs,
            "y": col("epoch_s"),
            "name": "epoch s",
            "marker": {"color": "#4c78a8"},
            "xaxis": "x",
            "yaxis": "y",
            "showlegend": False,
            "hovertemplate": "epoch %{x}: %{y:.3f} s<extra></extra>",
        },
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": epochs,
            "y": col("train_loss"),
            "name": "train loss",
            "xaxis": "x2",
            "yaxis": "y2",
            "line": {"color": "#4c78a8"},
        },
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": epochs,
            "y": col("val_loss"),
            "name": "validation loss",
            "xaxis": "x2",
            "yaxis": "y2",
            "line": {"color": "#f58518"},
        },
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": epochs,
            "y": col("train_acc", 100),
            "name": "train accuracy",
            "xaxis": "x3",
            "yaxis": "y3",
            "line": {"color": "#4c78a8", "dash": "dot"},
        },
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": epochs,
            "y": col("val_acc", 100),
            "name": "validation accuracy",
            "xaxis": "x3",
            "yaxis": "y3",
            "line": {"color": "#f58518", "dash": "dot"},
        },
    ]
    layout = {
        "height": 300,
        "margin": {"l": 60, "r": 20, "t": 40, "b": 45},
        "legend": {"orientation": "h", "y": -0.25},
        "xaxis": {"domain": [0, 0.28], "title": {"text": "epoch"}, "dtick": 1 if len(epochs) <= 30 else None},
        "yaxis": {"title": {"text": "epoch time (s)"}, "rangemode": "tozero"},
        "xaxis2": {"domain": [0.36, 0.64], "anchor": "y2", "title": {"text": "epoch"}},
        "yaxis2": {"anchor": "x2", "title": {"text": "loss"}},
        "xaxis3": {"domain": [0.72, 1], "anchor": "y3", "title": {"text": "epoch"}},
        "yaxis3": {"anchor": "x3", "title": {"text": "accuracy (%)"}},
        "annotations": [_title(t, x) for t, x in (("Epoch time", 0.14), ("Loss", 0.5), ("Accuracy", 0.86))],
    }
    figures["fig-epochs"] = {"data": traces, "layout": layout}
    return table(headers, rows) + "<div class='plot' id='fig-epochs'></div>"


def _title(text: str, x: float) -> dict[str, Any]:
    return {
        "text": f"<b>{plotly_text(text)}</b>",
        "x": x,
        "xref": "paper",
        "xanchor": "center",
        "y": 1.0,
        "yref": "paper",
        "yanchor": "bottom",
        "yshift": 8,
        "showarrow": False,
    }


def _quantiles(ms: np.ndarray) -> tuple[float, float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 90)), float(ms.mean())


def inference_section(run: RunData, figures: dict[str, Any]) -> str:
    inf = run.inference
    if inf.empty or "kind" not in inf:
        why = (
            "a profiled script has no inference phase"
            if run.record.kind != "train"
            else "no inference timings were recorded"
        )
        return f"<p class='muted'>{esc(why)}.</p>"
    headers = ["inference", "count", "images", "total ms", "mean ms", "p50 ms", "p90 ms", "ms per image", "accuracy"]
    rows, traces = [], []
    for kind, label, unit in (("batched", "test set, batched", "batch"), ("single", "one image at a time", "image")):
        g = inf[inf["kind"] == kind]
        if g.empty:
            continue
        ms = g["seconds"].to_numpy(dtype=float) * 1e3
        images = int(g["n_images"].sum())
        correct = int(g["correct"].sum()) if "correct" in g else None
        p50, p90, mean = _quantiles(ms)
        rows.append(
            [
                (esc(f"{label} (per {unit})"), label),
                (fmt(len(g), ",.0f"), len(g)),
                (fmt(images, ",.0f"), images),
                (fmt(ms.sum(), ",.1f"), float(ms.sum())),
                (fmt(mean, ",.3f"), mean),
                (fmt(p50, ",.3f"), p50),
                (fmt(p90, ",.3f"), p90),
                (fmt(ms.sum() / images, ",.4f"), float(ms.sum() / images)),
                (
                    fmt(correct / images if correct is not None and images else None, ".2f", " %", 100),
                    correct / images if correct is not None and images else None,
                ),
            ]
        )
        if kind == "batched":
            traces.append(
                {
                    "type": "bar",
                    "x": g["index"].tolist(),
                    "y": np.round(ms, 3).tolist(),
                    "name": "test batch",
                    "xaxis": "x",
                    "yaxis": "y",
                    "marker": {"color": "#54a24b"},
                    "hovertemplate": "batch %{x}: %{y:.2f} ms<extra></extra>",
                }
            )
        else:
            traces.append(
                {
                    "type": "histogram",
                    "x": np.round(ms, 4).tolist(),
                    "name": "single image",
                    "xaxis": "x2",
                    "yaxis": "y2",
                    "marker": {"color": "#b279a2"},
                    "nbinsx": 60,
                    "hovertemplate": "%{x} ms: %{y} images<extra></extra>",
                }
            )
    layout = {
        "height": 260,
        "margin": {"l": 60, "r": 20, "t": 40, "b": 45},
        "showlegend": False,
        "bargap": 0.05,
        "xaxis": {"domain": [0, 0.46], "title": {"text": "test batch"}},
        "yaxis": {"title": {"text": "ms per batch"}, "rangemode": "tozero"},
        "xaxis2": {"domain": [0.54, 1], "anchor": "y2", "title": {"text": "ms per image"}},
        "yaxis2": {"anchor": "x2", "title": {"text": "images"}},
        "annotations": [_title("Test set, per batch", 0.23), _title("Single-image latency", 0.77)],
    }
    figures["fig-inference"] = {"data": traces, "layout": layout}
    return table(headers, rows) + "<div class='plot' id='fig-inference'></div>"


def hot_section(run: RunData, notes: list[str]) -> str:
    path = run.path / schema.PSTATS
    if not path.exists():
        mode = run.record.profiler.get("mode")
        return (
            f"<p class='muted'>cProfile did not run{f' (--profiler {esc(mode)})' if mode else ''}: "
            "run with --profiler cprofile or both for this table.</p>"
        )
    from .hot import hot_functions

    try:
        hot = hot_functions(path)
    except Exception as exc:  # corrupt or truncated file
        notes.append(f"{schema.PSTATS} is unreadable ({type(exc).__name__}: {exc}); hot-function table left out")
        return f"<p class='muted'>{esc(schema.PSTATS)} is unreadable; see the notes.</p>"
    headers = ["ncalls", "tottime (s)", "percall (s)", "cumtime (s)", "percall (s)", "filename:lineno(function)"]
    body = [
        [
            (esc(r.ncalls_text), r.ncalls),
            (fmt(r.tottime, ",.3f"), r.tottime),
            (fmt(r.percall_tot, ",.6f"), r.percall_tot),
            (fmt(r.cumtime, ",.3f"), r.cumtime),
            (fmt(r.percall_cum, ",.6f"), r.percall_cum),
            (f"<span class='mono'>{esc(r.where)}</span>(<b>{esc(r.function)}</b>)", r.function),
        ]
        for r in hot.rows
    ]
    own = f" cnnprof's own {hot.own_left_out:,} functions are left out." if hot.own_left_out else ""
    return (
        f"<p class='muted'>cProfile, sorted by cumulative time; {len(hot.rows)} functions with the most; "
        f"total {hot.total_s:,.2f} s profiled.{own} Click a column to sort.</p>" + table(headers, body, "hot")
    )


def details_section(run: RunData) -> str:
    rec = run.record
    rows = []

    def kv(k: str, v: Any) -> None:
        rows.append(f"<tr><th>{esc(k)}</th><td class='mono'>{esc(v)}</td></tr>")

    kv("run directory", str(run.path))
    kv("command", " ".join(rec.argv))
    if rec.script is not None:
        kv("script command", " ".join([rec.script.path, *rec.script.argv]))
    kv("status", rec.status + (f": {rec.error}" if rec.error else ""))
    kv("host", ", ".join(f"{k} {v}" for k, v in vars(rec.host).items() if v not in (None, "")))
    kv("config", ", ".join(f"{k}={v}" for k, v in rec.config.items() if v is not None))
    for source, state in rec.telemetry.sources.items():
        kv(f"telemetry: {source}", state)
    if rec.profiler:
        kv(
            "profiler",
            ", ".join(f"{k}={v}" for k, v in rec.profiler.items() if k not in ("files",) and v not in (None, [], "")),
        )
    kv("cnnprof", f"{rec.cnnprof_version or '?'} (report by {__version__})")
    return "<table class='kv'>" + "".join(rows) + "</table>"


def notes_html(notes: list[str], cls: str = "notes") -> str:
    if not notes:
        return ""
    return f"<ul class='{cls}'>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"


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


# -- the page ------------------------------------------------------------------------------------
def _asset(name: str) -> str:
    return resources.files("cnnprof.reports").joinpath("assets", name).read_text(encoding="utf-8")


def page(title: str, body: str, data: dict[str, Any]) -> str:
    import plotly.offline

    generated = datetime.now().isoformat(timespec="seconds")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="generator" content="cnnprof {esc(__version__)}">
<title>{esc(title)}</title>
<style>{_asset("report.css")}</style>
</head><body>
<main>{body}
<footer class="muted">Generated {esc(generated)} by cnnprof {esc(__version__)}. Self-contained: works offline.</footer>
</main>
<script type="application/json" id="cnnprof-data">{script_json(data)}</script>
<script>{plotly.offline.get_plotlyjs()}</script>
<script>{_asset("report.js")}</script>
</body></html>
"""
