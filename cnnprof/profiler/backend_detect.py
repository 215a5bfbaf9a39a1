"""Which backend a profiled script used: the framework it imported and where its tensors lived.

The evidence, strongest first: the sync hooks' spans (each names its framework, `Tensor.item` vs
`mx.eval`, and the device it waited on); the step hooks' spans (a torch backward, an MLX
value_and_grad call); then the frameworks' own state (a CUDA context that was
initialised, MLX's default device); last, which framework is in `sys.modules` at all. Nothing is
imported here: a framework the script never imported is not looked at.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any

_MLX_SYNC_PREFIXES = ("mx.", "array.")
# Step-hook spans (profiler/steps.py) that only one framework produces.
_HOOK_FRAMEWORK = {
    "backward": "torch",
    "data": "torch",
    "loader": "torch",
    "first_forward": "torch",
    "mode": "torch",
    "grad": "mlx",
    "compiled": "mlx",
}


def _framework_of_sync(name: str) -> str:
    return "mlx" if name.startswith(_MLX_SYNC_PREFIXES) else "torch"


def detect_backend(rows: Iterable[tuple[Any, ...]], imported_before: Collection[str] = ()) -> tuple[str, str] | None:
    """(framework, device), e.g. ("torch", "cuda") or ("mlx", "gpu"); None when the script used
    neither framework. `rows` are the run's span rows (SpanRecorder.rows); `imported_before` the
    modules loaded before the script ran (a framework the script imported itself is the better
    evidence in a process that had both loaded already: a notebook, a test)."""
    devices: Counter[tuple[str, str]] = Counter()
    trained: Counter[str] = Counter()
    for row in rows:
        if row[0] == "sync" and row[7] and "device" in row[7]:
            devices[(_framework_of_sync(row[1]), row[7]["device"])] += 1
        elif row[0] == "hook" and row[1] in _HOOK_FRAMEWORK:
            trained[_HOOK_FRAMEWORK[row[1]]] += 1
    accelerated = [key for key, _ in devices.most_common() if key[1] != "cpu"]
    if accelerated:
        return accelerated[0]
    torch, mx = sys.modules.get("torch"), sys.modules.get("mlx.core")
    if torch is not None and _cuda_used(torch):
        return ("torch", "cuda")
    # On the CPU, reads are not syncs (not recorded): the step hooks say which framework trained.
    if any(fw == "mlx" for fw, _ in devices):  # mx.eval is recorded on the CPU device too
        return ("mlx", "cpu")
    if mx is not None and trained["mlx"] > trained["torch"]:
        return ("mlx", _mlx_device(mx))
    if torch is not None and trained["torch"] > trained["mlx"]:
        return ("torch", "cpu")
    # Nothing says which: the framework the script itself imported, else any that is loaded.
    loaded = [(name, key, module) for name, key, module in (("torch", "torch", torch), ("mlx", "mlx.core", mx))]
    loaded = sorted((item for item in loaded if item[2] is not None), key=lambda item: item[1] in imported_before)
    if not loaded:
        return None
    name, _, module = loaded[0]
    return (name, _mlx_device(module) if name == "mlx" else "cpu")


def _cuda_used(torch: Any) -> bool:
    try:
        return bool(torch.cuda.is_initialized())
    except Exception:  # a build without CUDA, or a stub module
        return False


def _mlx_device(mx: Any) -> str:
    try:
        return "gpu" if mx.default_device().type == mx.gpu else "cpu"
    except Exception:  # an mlx too old or too new for this check
        return "cpu"
