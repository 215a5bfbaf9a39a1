"""The pieces every page is made of (the run report and the comparison both import them): the
page shell with its inlined assets and content policy, cards, sortable tables, number formats,
lists of notes, plot titles."""

from __future__ import annotations

import math
from datetime import datetime
from importlib import resources
from typing import Any

from .. import __version__
from .text import esc, plotly_text, script_json

# The page may run its own inline scripts and styles, and nothing else: no fetch of any kind.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)


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


def notes_html(notes: list[str], cls: str = "notes") -> str:
    if not notes:
        return ""
    return f"<ul class='{cls}'>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"



def plot_title(text: str, x: float) -> dict[str, Any]:
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
