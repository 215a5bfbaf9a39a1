"""The one verdict per run: what bounds the steady-state training step.

In order: `setup-heavy` (most of the wall time, imports aside, is before the first step), then
`input-bound` / `sync-bound` (the larger, where both pass their finding's share), then on an
accelerator `compute-bound` (the device is busy) or `launch-bound` (the device idles and neither
input nor syncs explain it); on the CPU, `compute-bound`. The verdict reuses the supporting
finding's call sites and fix where there is one, and always carries the step-time split.
"""

from __future__ import annotations

from ..findings import Finding, Verdict
from .context import RunView, Samples, total_s
from .device_idle import DEVICE_IDLE_PCT
from .input import INPUT_BOUND_SHARE
from .sites import hot_user_sites, site_text
from .sync import SYNC_BOUND_SHARE, device_syncs, sync_split
from .sync_cost import trace_busy_line

# Setup (before the first step, imports not counted) at least half the wall time (imports not
# counted): a run that spends more time preparing than training is judged on its preparation.
SETUP_HEAVY_SHARE = 0.50
# Without GPU telemetry: the host waiting on the device (syncs) for at least half of the step
# means the device's work sets the pace.
DEVICE_WAIT_SHARE = 0.50


def _levers(ctx: RunView) -> str:
    threads = (ctx.run.meta.get("step_hooks") or {}).get("torch_threads")
    if ctx.device == "cuda" or (ctx.uses_gpu and ctx.framework != "mlx" and ctx.device != "mps"):
        return (
            "bf16 autocast (`torch.autocast('cuda', dtype=torch.bfloat16)`) or TF32 matmuls "
            "(`torch.set_float32_matmul_precision('high')`), channels_last for convolutions, a compiled "
            "step (torch.compile), a larger batch if memory allows."
        )
    if ctx.device == "mps":
        return (
            "float16 autocast on mps, channels_last, a larger batch; fewer, larger ops "
            "(torch.compile is limited on mps)."
        )
    if ctx.framework == "mlx" and ctx.uses_gpu:
        compiled = "" if _mlx_step_compiled(ctx) else "a compiled step (mx.compile), "
        return f"{compiled}bfloat16 / float16 weights and activations, a larger batch."
    if ctx.framework == "mlx":
        return (
            "MLX's CPU backend is not its fast path: train on the GPU (mx.set_default_device(mx.gpu)) where "
            "there is one; a compiled step (mx.compile); a smaller model or batch for quick experiments."
        )
    now = f" (now {threads})" if threads else ""
    return (
        f"threads: torch.set_num_threads(physical cores){now}; a compiled step (torch.compile); "
        "channels_last for convolutions; a batch size that fits the caches; bf16 autocast on CPUs with AMX/AVX-512."
    )


def _shares(ctx: RunView) -> dict[str, float]:
    total = sum(ctx.split.values())
    return {k: v / total for k, v in ctx.split.items()} if total > 0 else {}


def _verdict(ctx: RunView, id: str, claim: str, evidence: list[str], fix: str, sites: list | None = None) -> Verdict:
    window = ctx.window_text
    if ctx.steps_source:
        window += f"; steps from {ctx.steps_source}"
    return Verdict(id, claim, evidence, fix, window, ctx.step_median_s, _shares(ctx), ctx.device_busy_pct, sites or [])


def judge(ctx: RunView, findings: list[Finding]) -> Verdict:
    by_id = {f.id: f for f in findings}
    setup = _setup_heavy(ctx)
    if setup is not None:
        return setup
    shares = _shares(ctx)
    input_share = shares.get("data", 0.0)
    input_finding = by_id.get("input-bound")
    if not shares and input_finding is not None:  # no steps: the input rule's sampled share
        input_share = INPUT_BOUND_SHARE
    syncs = device_syncs(ctx) if ctx.uses_gpu else None
    sync_share = (
        shares.get("sync", 0.0)
        if shares
        else (float(syncs["dur_s"].sum()) / ctx.window_s if syncs is not None and not syncs.empty else 0.0)
    )
    split, split_line = sync_split(ctx, syncs) if syncs is not None else ("unknown", None)
    # A wait the device was busy through is the device's work (compute-bound). MLX dispatches and
    # computes inside mx.eval: its eval time is the step's work (compute- or launch-bound), never a
    # sync problem (sync.py says why).
    sync_blames = ctx.framework != "mlx" and split in ("serialisation", "unknown")
    sync_candidate = ctx.uses_gpu and sync_share >= SYNC_BOUND_SHARE and sync_blames
    input_candidate = input_share >= INPUT_BOUND_SHARE and input_finding is not None
    if input_candidate and (not sync_candidate or input_share >= sync_share):
        return _verdict(
            ctx,
            "input-bound",
            input_finding.claim,
            input_finding.evidence[:4],
            input_finding.fix,
            input_finding.call_sites,
        )
    if sync_candidate:
        finding = by_id.get("sync-bound")
        evidence = finding.evidence[:4] if finding else ([split_line] if split_line else [])
        fix = finding.fix if finding else "Remove or batch the per-step syncs."
        claim = (
            f"Waiting on the {ctx.device or 'device'} in blocking syncs takes {sync_share:.0%} of the steady-state "
            f"step ({split})"
        )
        return _verdict(ctx, "sync-bound", claim, evidence, fix, finding.call_sites if finding else [])
    return _device_verdict(ctx, sync_share, split, split_line)


def _device_verdict(ctx: RunView, sync_share: float, split: str, split_line: str | None) -> Verdict:
    hot = hot_user_sites(ctx, ctx.window)
    evidence = [f"hottest lines (stack samples): {'; '.join(site_text(s) for s in hot[:3])}"] if hot else []
    if not ctx.uses_gpu:
        what = "the CPU's own computation"
        if ctx.framework == "mlx" and not ctx.cpu_evals.empty:
            evals = ctx.cpu_evals
            inside = f"{_shares(ctx).get('sync', 0.0):.0%} of the step is inside mx.eval, " if ctx.split else ""
            what += f" ({inside}which on the CPU device is the computation itself)"
            evidence.insert(
                0,
                f"{len(evals):,} mx.eval calls, {float(evals['dur_s'].sum()):.2f} s: on the CPU device an eval is "
                "the computation itself, not a wait",
            )
        claim = f"The steady-state step is {what}: compute-bound on the CPU (no accelerator, no input or setup cause)"
        return _verdict(ctx, "compute-bound", claim, evidence, "Levers that fit this device: " + _levers(ctx), hot)
    busy = ctx.device_busy_pct
    if split_line:
        evidence.append(split_line)
    traced = trace_busy_line(ctx.gpu_trace) if ctx.gpu_trace is not None else None
    if traced:
        evidence.append(traced)
    if ctx.busy_caveat:
        evidence.append(ctx.busy_caveat)
    if busy is not None:
        if busy >= DEVICE_IDLE_PCT:
            claim = f"The GPU is busy {busy:.0f}% of the steady-state step: compute-bound"
            return _verdict(ctx, "compute-bound", claim, evidence, "Levers that fit this device: " + _levers(ctx), hot)
        claim = (
            f"The GPU is busy only {busy:.0f}% of the steady-state step and neither input nor syncs explain it: "
            "launch-bound (the host cannot issue work fast enough)"
        )
        return _verdict(ctx, "launch-bound", claim, evidence, _launch_fix(ctx), hot)
    evidence.append(
        "no GPU utilisation telemetry: from the host, a busy and an idle device look alike; rerun with telemetry "
        "(NVML / powermetrics) to tell"
    )
    if sync_share >= DEVICE_WAIT_SHARE:
        claim = f"The host waits on the device for {sync_share:.0%} of the steady-state step: compute-bound"
        return _verdict(ctx, "compute-bound", claim, evidence, "Levers that fit this device: " + _levers(ctx), hot)
    claim = "The host's own work sets the pace of the steady-state step (no GPU telemetry): launch-bound"
    return _verdict(ctx, "launch-bound", claim, evidence, _launch_fix(ctx), hot)


def _mlx_step_compiled(ctx: RunView) -> bool:
    """The training step is an `mx.compile`d function (the step hooks' `compiled` spans)."""
    return not ctx.hook_spans("compiled").empty


def _launch_fix(ctx: RunView) -> str:
    if ctx.framework == "mlx":
        first = (
            "The step is compiled already: launch fewer kernels per step"
            if _mlx_step_compiled(ctx)
            else "Compile the whole step (mx.compile with the model and optimizer state as inputs/outputs)"
        )
        return (
            f"{first}; use larger batches; where a layer's MLX form is many small kernels (pooling by "
            "reductions over a transposed view, and its gradient), an elementwise form of the same function; "
            "on MLX's CUDA backend, MLX_USE_CUDA_GRAPHS=0 (recording many small kernels into CUDA graphs can "
            "cost the host more than launching them)."
        )
    return (
        "Launch fewer, larger kernels: capture the step in a CUDA graph (torch.compile(mode='reduce-overhead') or "
        "torch.cuda.graphs), a fused optimizer (Adam(fused=True)), a larger batch; keep the host free of per-step "
        "Python work."
    )


def _setup_heavy(ctx: RunView) -> Verdict | None:
    setup = ctx.setup_window
    if not setup.size:
        return None
    wall_s = ctx.duration_ns / 1e9
    setup_s = total_s(setup)
    imports_s = ctx.samples.seconds_where(Samples.stack_is_import, setup)
    if wall_s - imports_s <= 0 or setup_s - imports_s < SETUP_HEAVY_SHARE * (wall_s - imports_s):
        return None
    hot = hot_user_sites(ctx, setup)
    evidence = [
        f"setup (before the first training step) {setup_s:.2f} s of {wall_s:.2f} s wall time, "
        f"of which {imports_s:.2f} s imports (not counted)",
    ]
    if hot:
        evidence.append(f"setup time by user line (stack samples): {'; '.join(site_text(s) for s in hot[:3])}")
    claim = (
        f"Most of the run is setup: {setup_s - imports_s:.2f} s before the first training step against "
        f"{wall_s - setup_s:.2f} s of training (setup-heavy)"
    )
    where = f" ({'; '.join(site_text(s) for s in hot[:2])})" if hot else ""
    fix = (
        f"Make the preparation cheaper{where}: keep data as arrays / tensors instead of Python lists, load "
        "once and cache it (np.save / torch.save), vectorise per-item conversion loops."
    )
    return _verdict(ctx, "setup-heavy", claim, evidence, fix, hot)
