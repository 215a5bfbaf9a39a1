"""Library or user code, by a frame's file path alone (never by what was imported when).

A frame is library code when its file is in site-packages / dist-packages, the standard library
(sysconfig's stdlib / platstdlib / purelib / platlib), a framework's folder wherever it is
installed (torch, mlx: a source checkout too), a pseudo-file (`<built-in>`, `<frozen ...>`,
`<string>`), or cnnprof's own machinery (all of cnnprof but `cnnprof/models/`, whose loops are the
user's code in `cnnprof run`). So tqdm, torchvision or a library imported after torch is library
code like any other, and the user's own lines are what is left. Shared by the stack tables
(stacks.py) and the sync hooks' caller walk (sync.py).
"""

from __future__ import annotations

import contextlib
import os
import sys
import sysconfig
from collections.abc import Sequence

_CNNPROF_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_CNNPROF_USER_DIR = os.path.join(_CNNPROF_DIR, "models") + os.sep
# Pseudo-files that hold the user's own code: an IPython cell, code typed at the prompt.
_USER_PSEUDO_FILES = ("<ipython-input", "<stdin>")


def _library_prefixes() -> tuple[str, ...]:
    paths = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            paths.add(os.path.abspath(sysconfig.get_paths()[key]) + os.sep)
    for pkg in ("torch", "mlx", "numpy"):
        module = sys.modules.get(pkg)
        for p in getattr(module, "__path__", []) or []:
            paths.add(os.path.abspath(p) + os.sep)
    return tuple(sorted(paths))


class LibraryClassifier:
    """Tells library frames from user frames by file name (cached per file)."""

    def __init__(self, prefixes: Sequence[str] | None = None) -> None:
        self.prefixes = tuple(prefixes) if prefixes is not None else _library_prefixes()
        self._cache: dict[str, bool] = {}

    def __call__(self, file: str) -> bool:
        hit = self._cache.get(file)
        if hit is None:
            hit = self._cache[file] = self._classify(file)
        return hit

    def _classify(self, file: str) -> bool:
        if file.startswith("<"):  # <built-in>, <frozen importlib._bootstrap>, <string>: not the user's
            return not file.startswith(_USER_PSEUDO_FILES)
        if "site-packages" in file or "dist-packages" in file:
            return True
        if file.startswith(_CNNPROF_DIR):
            return not file.startswith(_CNNPROF_USER_DIR)
        return file.startswith(self.prefixes)
