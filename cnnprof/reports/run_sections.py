"""The run report's sections: the summary cards, the per-epoch and inference tables with their
figures, the hot-function table (cProfile) and the run details."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..traces import schema
from ..traces.metrics import lookup, metric_parts
from ..traces.reader import RunData
from .page import card, fmt, plot_title, table
from .text import esc


def energy_keys(run: RunData) -> list[str]:
    if run.metrics.empty:
        return []
    return sorted(c.removeprefix("energy_j.") for c in run.metrics.columns if c.startswith("energy_j."))


def pretty_source(key: str) -> str:
    """A power series key (`<source>.<metric>`, traces/energy.py) by its vocabulary label."""
    _, _, metric = key.partition(".")
    entry = lookup(metric)
    if entry is not None and entry.label:
        gpu = metric_parts(metric)[0]
        return entry.label + (f" ({gpu})" if gpu else "")
    return key.removesuffix("power_w").rstrip("._") or key


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
                esc(
                    f"{dataset.train:,} train · {dataset.validation:,} val · {dataset.test:,} test · {shape}"
                ),
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
        why = (
            "a profiled script has no epochs"
            if run.record.kind != "train"
            else "no per-epoch metrics were recorded"
        )
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
        "annotations": [plot_title(t, x) for t, x in (("Epoch time", 0.14), ("Loss", 0.5), ("Accuracy", 0.86))],
    }
    figures["fig-epochs"] = {"data": traces, "layout": layout}
    return table(headers, rows) + "<div class='plot' id='fig-epochs'></div>"


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
        "annotations": [plot_title("Test set, per batch", 0.23), plot_title("Single-image latency", 0.77)],
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
