"""Escaping for the three places user-controlled text (function and file names, argv, script
names, error text) lands in a report: HTML, plotly labels, and JSON inside a <script> element."""

from __future__ import annotations

import html
import json
from typing import Any


def esc(value: Any) -> str:
    """Text for HTML element content and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def plotly_text(value: Any) -> str:
    """Text for plotly labels (names, hover text, annotations). plotly renders a few tags (<b>, <a>,
    <br>, ...) and decodes &lt; &gt; &amp;; it does not know &quot;, so quotes stay as they are."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def script_json(data: Any) -> str:
    """JSON to put inside <script type="application/json">: no `</script>`, `<!--` or `]]>` can
    appear in it, so the element cannot be closed or turned into a comment by the data."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.translate(_SCRIPT_SAFE)
