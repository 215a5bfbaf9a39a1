"""Putting wrappers on framework attributes while a run is observed, and taking them off again.

Shared by the sync hooks (sync.py) and the step hooks (steps.py): a `Patcher` records every
attribute it replaced and restores each original at `restore` (unless other code replaced the
wrapper since: then it is left alone, with a note); an import watcher runs a callback the moment
a framework module finishes importing, which is what a profiled script needs (it imports torch
after the hooks start). Installing never raises into the user's code: a module that lacks what
a hook needs (a stub, an old version) keeps its originals and the reason is noted.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

HOOK_NAME_ATTR = "_cnnprof_hook"


@dataclass
class Patch:
    owner: Any  # a class or a module
    attr: str
    original: Any
    wrapper: Any
    had_own: bool  # the attribute was in owner.__dict__ (else it was inherited: delete to restore)


def named(wrapper: Any, original: Any, name: str) -> Any:
    """The wrapper, looking like the original to introspection (name, docs, `__wrapped__`)."""
    for attr in ("__name__", "__qualname__", "__doc__"):
        with contextlib.suppress(AttributeError, TypeError):
            setattr(wrapper, attr, getattr(original, attr))
    wrapper.__wrapped__ = original
    setattr(wrapper, HOOK_NAME_ATTR, name)
    return wrapper


class Patcher:
    """The patches of one set of hooks."""

    def __init__(self) -> None:
        self.patches: list[Patch] = []
        self.not_hooked: dict[str, str] = {}  # hook name -> why not
        self.notes: list[str] = []
        self._watcher: _ImportWatcher | None = None

    @property
    def hooked(self) -> list[str]:
        return [getattr(p.wrapper, HOOK_NAME_ATTR, p.attr) for p in self.patches]

    def patch(self, owner: Any, attr: str, name: str, make: Callable[[str, Any], Any]) -> None:
        """Replaces `owner.attr` by `make(name, original)`; a failure is noted, never raised."""
        try:
            had_own = attr in owner.__dict__ if isinstance(owner, type) else True
            original = getattr(owner, attr, None)
            if original is None:
                self.not_hooked[name] = "not present in this version"
                return
            wrapper = make(name, original)
            setattr(owner, attr, wrapper)
        except Exception as exc:  # an immutable extension type, a stub module: keep the original
            self.not_hooked[name] = f"cannot patch: {type(exc).__name__}: {exc}"
            return
        self.patches.append(Patch(owner, attr, original, wrapper, had_own))

    def guarded(self, what: str, install: Callable[[], None]) -> None:
        """Runs one framework's installation; if it raises, that framework stays unhooked."""
        try:
            install()
        except Exception as exc:
            self.not_hooked[what] = f"hooks not installed: {type(exc).__name__}: {exc}"

    def watch(self, names: set[str], on_import: Callable[[str], None]) -> None:
        """Calls `on_import(name)` when each of `names` (not yet imported) finishes importing."""
        pending = {n for n in names if n not in sys.modules}
        if pending:
            self._watcher = _ImportWatcher(pending, on_import, self)
            sys.meta_path.insert(0, self._watcher)

    def restore(self) -> None:
        """Removes the watcher and puts every original back (unless replaced by others since)."""
        if self._watcher is not None:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self._watcher)
            self._watcher = None
        for patch in reversed(self.patches):
            current = (
                patch.owner.__dict__.get(patch.attr)
                if isinstance(patch.owner, type)
                else getattr(patch.owner, patch.attr, None)
            )
            name = getattr(patch.wrapper, HOOK_NAME_ATTR, patch.attr)
            if current is not patch.wrapper:
                self.notes.append(f"{name}: replaced by other code while hooked; left alone")
                continue
            if patch.had_own:
                setattr(patch.owner, patch.attr, patch.original)
            else:
                delattr(patch.owner, patch.attr)
        self.patches.clear()


class _LoaderProxy:
    """Runs the real loader, then calls `after` once the module has executed in full."""

    def __init__(self, loader: Any, after: Callable[[], None]) -> None:
        self._loader = loader
        self._after = after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        # Put the real loader back where importlib left ours, so nothing downstream sees a proxy.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._after()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _ImportWatcher(importlib.abc.MetaPathFinder):
    """A `sys.meta_path` finder that calls back when a watched module finishes importing."""

    def __init__(self, names: set[str], on_import: Callable[[str], None], patcher: Patcher) -> None:
        self._pending = set(names)
        self._on_import = on_import
        self._patcher = patcher
        self._searching = False

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._pending or self._searching:
            return None
        self._searching = True
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._searching = False
        if spec is None or spec.loader is None:
            return None
        self._pending.discard(fullname)

        def installed() -> None:
            self._patcher.guarded(fullname, lambda: self._on_import(fullname))

        spec.loader = _LoaderProxy(spec.loader, installed)
        return spec
