"""Which backends this machine can run, and why not when it can't (for `run` and `doctor`).

Frameworks are imported here lazily, only to probe: `cnnprof report` never comes this way.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass

from ..errors import UserError

BACKENDS = ("torch_cpu", "torch_mps", "torch_cuda", "mlx_gpu", "mlx_cpu")
# `auto` takes the first available: a GPU when there is one, PyTorch's CPU path otherwise.
AUTO_ORDER = ("torch_cuda", "torch_mps", "mlx_gpu", "torch_cpu", "mlx_cpu")


@dataclass(frozen=True)
class BackendStatus:
    name: str
    available: bool
    reason: str = ""  # why not, when not available
    fix: str = ""  # what to do about it
    framework: str = ""
    framework_version: str = ""
    device: str = ""  # cpu / cuda / mps / gpu
    device_name: str = ""


def _missing(name: str, framework: str, fix: str) -> BackendStatus:
    return BackendStatus(name, False, f"{framework} is not installed", fix, framework)


def _probe_torch(name: str) -> BackendStatus:
    if importlib.util.find_spec("torch") is None:
        return _missing(name, "torch", 'pip install "cnnprof[torch]"')
    import torch

    version = torch.__version__
    if name == "torch_cpu":
        from ..profiler.host import cpu_model

        return BackendStatus(
            name, True, framework="torch", framework_version=version, device="cpu", device_name=cpu_model()
        )
    if name == "torch_cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            return BackendStatus(
                name,
                False,
                f"torch {version} ({build}) sees no CUDA GPU",
                "on a machine with an NVIDIA GPU install a CUDA build of torch (pytorch.org/get-started)",
                "torch",
                version,
            )
        return BackendStatus(
            name,
            True,
            framework="torch",
            framework_version=version,
            device="cuda",
            device_name=torch.cuda.get_device_name(0),
        )
    # torch_mps
    if sys.platform != "darwin":
        return BackendStatus(
            name,
            False,
            "the mps device exists only on macOS with Apple Silicon",
            "use --backend torch_cuda or torch_cpu here",
            "torch",
            version,
        )
    if not torch.backends.mps.is_available():
        return BackendStatus(
            name,
            False,
            f"torch {version} reports mps unavailable",
            "use macOS 12.3+ on Apple Silicon and an arm64 Python",
            "torch",
            version,
        )
    return BackendStatus(
        name, True, framework="torch", framework_version=version, device="mps", device_name="Apple GPU (mps)"
    )


def _probe_mlx(name: str) -> BackendStatus:
    if importlib.util.find_spec("mlx") is None:
        fix = (
            'pip install "cnnprof[mlx]"'
            if sys.platform == "darwin"
            else 'pip install "mlx[cpu]" (CPU) or "mlx[cuda13]" (NVIDIA)'
        )
        return _missing(name, "mlx", fix)
    try:
        import mlx.core as mx
    except ImportError as exc:
        return BackendStatus(
            name,
            False,
            f"mlx fails to import: {exc}",
            'reinstall mlx ("mlx[cpu]" on Linux without a GPU)',
            "mlx",
        )
    version = mx.__version__
    if name == "mlx_cpu":
        from ..profiler.host import cpu_model

        return BackendStatus(
            name, True, framework="mlx", framework_version=version, device="cpu", device_name=cpu_model()
        )
    if not mx.is_available(mx.gpu):
        fix = (
            'on Apple Silicon install mlx for macOS; on NVIDIA (driver >= 580) pip install "mlx[cuda13]"'
            if sys.platform != "darwin"
            else "mlx needs Apple Silicon for its Metal backend"
        )
        return BackendStatus(
            name, False, f"mlx {version} has no GPU backend here (CPU build)", fix, "mlx", version
        )
    device_name = "Apple GPU (Metal)" if sys.platform == "darwin" else "NVIDIA GPU (MLX CUDA)"
    try:
        info = mx.device_info()
        device_name = str(info.get("device_name") or info.get("architecture") or device_name)
    except Exception:  # device_info's keys differ across versions and backends
        pass
    return BackendStatus(
        name, True, framework="mlx", framework_version=version, device="gpu", device_name=device_name
    )


def probe_backend(name: str) -> BackendStatus:
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose one of: auto, {', '.join(BACKENDS)}")
    return _probe_torch(name) if name.startswith("torch") else _probe_mlx(name)


def resolve_backend(name: str) -> BackendStatus:
    """The backend to run for `--backend name`; a UserError when it can't run here."""
    if name == "auto":
        for candidate in AUTO_ORDER:
            status = probe_backend(candidate)
            if status.available:
                return status
        raise UserError('no backend is available: install torch or mlx (pip install "cnnprof[torch]")')
    status = probe_backend(name)
    if not status.available:
        raise UserError(f"backend {name} is not available: {status.reason}; fix: {status.fix}")
    return status
