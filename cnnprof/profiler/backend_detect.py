"""Which backend a profiled script used: the framework it imported and where its tensors lived.

The evidence, strongest first: the sync hooks' spans (each names its framework, `Tensor.item` vs
`mx.eval`, and the device it waited on); then the frameworks' own state (a CUDA context that was
initialised, MLX's default device); last, which framework is in `sys.modules` at all. Nothing is
imported here: a framework the script never imported is not looked at.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable
from typing import Any

_MLX_SYNC_PREFIXES = ("mx.", "array.")


def _framework_of_sync(name: str) -> str:
    return "mlx" if name.startswith(_MLX_SYNC_PREFIXES) else "torch"


def detect_backend(rows: Iterable[tuple[Any, ...]]) -> tuple[str, str] | None:
    """(framework, device), e.g. ("torch", "cuda") or ("mlx", "gpu"); None when the script used
    neither framework. `rows` are the run's span rows (SpanRecorder.rows)."""
    devices: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row[0] == "sync" and row[7] and "device" in row[7]:
            devices[(_framework_of_sync(row[1]), row[7]["device"])] += 1
    accelerated = [(key, n) for key, n in devices.most_common() if key[1] != "cpu"]
    if accelerated:
        return accelerated[0][0]
    torch = sys.modules.get("torch")
    if torch is not None and _cuda_used(torch):
        return ("torch", "cuda")
    mx = sys.modules.get("mlx.core")
    if mx is not None and (not devices or any(fw == "mlx" for fw, _ in devices)):
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
