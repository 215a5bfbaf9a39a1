"""Rule `recompiles`: a compiled function traced again after its first trace (spans of kind
`compile`, profiler/recompiles.py): how often, what it cost, which inputs changed, where it was
called, and how to keep it from happening.

MLX retraces `mx.compile`d functions on every new input shape (on a new ndim or dtype even with
`shapeless=True`) and on new constant arguments; torch.compile recompiles when a guard fails (the
reason is Dynamo's). The first trace of each function is warm-up, not a finding.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..findings import CallSite, Finding
from .context import RunView, attrs_of
from .sites import split_caller

KIND = "compile"
# Retraces costing this share of the observed time: medium; HIGH_SHARE: high.
MEDIUM_SHARE = 0.02
HIGH_SHARE = 0.10
# This many retraces of one function, at least one per MEDIUM_EVERY training steps, is medium
# even when each is cheap: shapes keep changing. Rarer cheap ones are each new shape's first
# sight (MLX's own compiled activations retrace once per layer shape, the last batch, the
# validation batches: 13 retraces for 530 steps and 1.3 ms on the H200), which the cache then hits.
MEDIUM_COUNT = 10
MEDIUM_EVERY = 20
SHOWN_SHAPES = 6
SHOWN_REASONS = 3

_RANK = {"high": 0, "medium": 1, "low": 2}


def _changed_inputs(traces: list[list[str]]) -> list[str]:
    """Per input position whose value differs between traces: 'input i: a -> b -> ...'."""
    width = max((len(t) for t in traces), default=0)
    out = []
    for i in range(width):
        seen = [t[i] if i < len(t) else "-" for t in traces]
        if len(set(seen)) > 1:
            distinct = list(dict.fromkeys(seen))
            more = f" (+{len(distinct) - SHOWN_SHAPES} more)" if len(distinct) > SHOWN_SHAPES else ""
            out.append(f"input {i}: {' -> '.join(distinct[:SHOWN_SHAPES])}{more}")
    return out


def _seconds(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.1f} ms"


def _is_retrace(attrs: dict[str, Any]) -> bool:
    if attrs.get("framework") == "torch":
        return bool(attrs.get("reason"))
    return int(attrs.get("trace") or 1) > 1


def _fix(framework: str, shapeless: bool) -> str:
    if framework == "torch":
        return (
            "Mark the dimension that changes as dynamic (torch._dynamo.mark_dynamic(x, dim)) or compile with "
            "dynamic=True; or pad inputs to a few bucket sizes (or drop_last=True for a short last batch)."
        )
    if shapeless:
        return (
            "shapeless=True does not cover a new ndim or dtype, nor new constant arguments: keep those fixed "
            "(pass changing numbers as arrays), or pad inputs to a few bucket shapes."
        )
    return (
        "Pass shapeless=True to mx.compile when only sizes change (not ndim or dtype), or pad inputs to a few "
        "bucket sizes so that the cache is hit."
    )


def _finding(group: pd.DataFrame, window_s: float, first_step_ns: int | None, n_steps: int) -> Finding | None:
    attrs = [attrs_of(a) for a in group["attrs"].tolist()]
    retrace = [_is_retrace(a) for a in attrs]
    n = sum(retrace)
    if n == 0:
        return None
    framework = attrs[0].get("framework", "?")
    fn = str(group["name"].iloc[0])
    cost = float(group["dur_s"][retrace].sum())
    # Retraces before the first training step are setup (a compile per input shape, paid once,
    # such as a captured step's for a short last batch): said, but never more than low.
    starts = group["start_ns"].tolist()
    late = [r and (first_step_ns is None or t >= first_step_ns) for r, t in zip(retrace, starts, strict=True)]
    late_cost = float(group["dur_s"][late].sum())
    share = late_cost / window_s if window_s > 0 else 0.0
    n_late = sum(late)
    severity = (
        "high"
        if share >= HIGH_SHARE
        else "medium"
        if share >= MEDIUM_SHARE or (n_late >= MEDIUM_COUNT and n_late * MEDIUM_EVERY >= n_steps)
        else "low"
    )
    evidence = [
        f"{fn}: {len(group)} compiles, {n} after the first, {_seconds(cost)} in them"
        + (f" ({share:.1%} of the observed time)" if n_late else "")
    ]
    if n_late < n:
        evidence.append(f"{n - n_late} of them before the first training step (setup, paid once)")
    if framework == "torch":
        reasons = pd.Series([a.get("reason") for a, r in zip(attrs, retrace, strict=True) if r]).value_counts()
        evidence += [f"reason ({count}x): {reason}" for reason, count in reasons.head(SHOWN_REASONS).items()]
    else:
        evidence += _changed_inputs([[str(x) for x in a.get("inputs") or []] for a in attrs])
        trace_s = sum(float(a.get("trace_s") or 0) for a, r in zip(attrs, retrace, strict=True) if r)
        evidence.append(f"{_seconds(trace_s)} of that in the function's Python body (the trace)")
    sites: dict[tuple[str, int], list[float]] = {}
    for caller, dur, again in zip(group["caller"].tolist(), group["dur_s"].tolist(), retrace, strict=True):
        if again and (site := split_caller(caller)) is not None:
            sites.setdefault(site, []).append(dur)
    call_sites = [
        CallSite(f, line, len(d), sum(d)) for (f, line), d in sorted(sites.items(), key=lambda kv: -sum(kv[1]))
    ]
    if call_sites:
        evidence.append(f"called from {call_sites[0].file}:{call_sites[0].line}")
    return Finding(
        "recompiles",
        severity,
        f"{fn} was recompiled {n} time{'s' if n != 1 else ''} after its first compile ({framework}): "
        f"{_seconds(cost)} spent compiling again",
        evidence,
        _fix(framework, any(bool(a.get("shapeless")) for a in attrs)),
        call_sites,
    )


def rule_recompiles(ctx: RunView) -> list[Finding]:
    spans = ctx.spans
    compiles = spans[spans["kind"] == KIND]
    if compiles.empty:
        return []
    frameworks = [attrs_of(a).get("framework", "?") for a in compiles["attrs"].tolist()]
    compiles = compiles.assign(framework=frameworks).sort_values("start_ns", kind="stable")
    first_step = int(ctx.steps[0, 0]) if len(ctx.steps) else None
    findings = [
        f
        for _, group in compiles.groupby(["framework", "name"], sort=False)
        if (f := _finding(group, float(ctx.window_s), first_step, len(ctx.steps))) is not None
    ]
    return sorted(findings, key=lambda f: _RANK[f.severity])
