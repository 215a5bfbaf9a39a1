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
from collections.abc import Iterable
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


def detect_backend(rows: Iterable[tuple[Any, ...]]) -> tuple[str, str] | None:
    """(framework, device), e.g. ("torch", "cuda") or ("mlx", "gpu"); None when the script used
    neither framework. `rows` are the run's span rows (SpanRecorder.rows)."""
    devices: Counter[tuple[str, str]] = Counter()
    trained: Counter[str] = Counter()
    for row in rows:
        if row[0] == "sync" and row[7] and "device" in row[7]:
            devices[(_framework_of_sync(row[1]), row[7]["device"])] += 1
        elif row[0] == "hook" and row[1] in _HOOK_FRAMEWORK:
            trained[_HOOK_FRAMEWORK[row[1]]] += 1
    accelerated = [(key, n) for key, n in devices.most_common() if key[1] != "cpu"]
    if accelerated:
        return accelerated[0][0]
    torch = sys.modules.get("torch")
    if torch is not None and _cuda_used(torch):
        return ("torch", "cuda")
    mx = sys.modules.get("mlx.core")
    # On the CPU, reads are not syncs (not recorded): the step hooks say which framework trained.
    used_mlx = trained["mlx"] > trained["torch"] or any(fw == "mlx" for fw, _ in devices)
    if mx is not None and (used_mlx or torch is None):
        return ("mlx", _mlx_device(mx))
    if torch is not None:
        return ("torch", "cpu")
    return None


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
