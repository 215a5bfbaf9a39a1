"""cnnprof: where does my training time (and energy) go, and why?

The Python API (`cnnprof.profile`, `cnnprof.step`, `cnnprof.phase`) and the IPython extension
(`%load_ext cnnprof`) are loaded on first use, so that `import cnnprof` stays cheap (the telemetry
sampler process imports this package too).
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "profile": "api",
    "Profile": "api",
    "ProfileError": "api",
    "step": "api",
    "phase": "api",
    "load_ipython_extension": "magic",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnprof' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
