"""Run a callback on a module as soon as it is imported, or at once if it already is.

A profiled script imports its frameworks after the run has started, so the observers that patch
a framework (recompiles.py, fallback.py) cannot patch at start. `when_imported` puts a finder
first on `sys.meta_path` that, for the one module name, lets the normal machinery find and load
the module and then hands it to the callback. `remove()` takes the finder out again.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

Callback = Callable[[ModuleType], None]


class _Loader(importlib.abc.Loader):
    """Delegates to the real loader, then calls the callback on the executed module."""

    def __init__(self, loader: importlib.abc.Loader, callback: Callback) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        try:
            self._callback(module)
        except Exception:  # a broken hook must never break the user's import
            log.warning("hook on import of %s failed", module.__name__, exc_info=True)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, callback: Callback) -> None:
        self.name = name
        self.callback: Callback | None = callback

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name or self.callback is None:
            return None
        callback, self.callback = self.callback, None  # once; also keeps find_spec below from recursing
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader, callback)
        return spec


class ImportHook:
    """The handle `when_imported` returns."""

    def __init__(self, finder: _Finder | None) -> None:
        self._finder = finder

    def remove(self) -> None:
        if self._finder is not None and self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        self._finder = None


def when_imported(name: str, callback: Callback) -> ImportHook:
    """Calls `callback(module)` once `name` is imported: now if it is in sys.modules already."""
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
        return ImportHook(None)
    finder = _Finder(name, callback)
    sys.meta_path.insert(0, finder)
    return ImportHook(finder)
