"""Runs the user's own script or module in this process, as `python SCRIPT ARGS` /
`python -m MODULE ARGS` would, so that cnnprof's observers see it (`cnnprof profile`).

What matches Python: the code runs as `__main__` (`if __name__ == "__main__":` blocks run),
`sys.argv[1:]` are the arguments, `sys.path[0]` is the script's directory (symlinks resolved, as
Python does) or, for `-m`, the current directory, and `__file__` is absolute (as since Python
3.9). `sys.argv`, `sys.path` and `sys.modules["__main__"]` are restored afterwards (runpy
restores `__main__` itself).

What does not: `sys.argv[0]` is the script's absolute path where Python keeps it as typed (runpy
sets `argv[0]` to the path it runs, and that path must be absolute for `__file__` and the code's
file names, hence the sync call sites and stack frames, to be absolute); for `-m` it is the
module's file, as in Python. The modules the script imported stay imported (this process goes on
to write the run), and `sys.exit` inside the script ends only the script: its code is returned.
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import sys
import traceback
from pathlib import Path

from ..errors import UserError

_RUNNER_FILES = (os.path.abspath(__file__), os.path.abspath(runpy.__file__))


def run_user_code(target: str, args: list[str], *, module: bool) -> int:
    """Runs `target` (a script path, or a module name with `module=True`) with `args`.

    Returns the script's exit code (0 when it ends normally, `SystemExit`'s code otherwise; a
    non-int code is printed to stderr and gives 1, as Python does). Any other exception
    propagates with the script's traceback. A script or module that does not exist is a
    `UserError`.
    """
    if not module:
        check_user_code(target, module=False)

    saved_argv = sys.argv[:]
    saved_path = sys.path[:]
    try:
        if module:
            sys.path[0:1] = [os.getcwd()]  # before the lookup, as `python -m` does
            _check_module(target)
            sys.argv = [target, *args]  # run_module(alter_sys=True) puts the module's file in argv[0]
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            script = os.path.abspath(target)
            sys.argv = [script, *args]  # run_path puts its path argument in argv[0] anyway
            sys.path[0:1] = [os.path.dirname(os.path.realpath(script))]
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        return _exit_code(exc.code)
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
    return 0


def check_user_code(target: str, *, module: bool) -> None:
    """Raises `UserError` (one line) if the script or module does not exist; call it before the
    run directory is made, so that a typo leaves nothing behind."""
    if module:
        saved_path = sys.path[:]
        try:
            sys.path[0:1] = [os.getcwd()]
            _check_module(target)
        finally:
            sys.path[:] = saved_path
        return
    path = Path(target)
    if not path.is_file():
        what = "is a directory, not a script" if path.is_dir() else "no such script"
        raise UserError(f"{target}: {what} (pass a .py file: cnnprof profile -- SCRIPT [ARGS])")


def _check_module(name: str) -> None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:  # a parent package that is missing, or a bad name
        raise UserError(f"{name}: no such module ({exc}); check the name and the current directory") from None
    if spec is None:
        raise UserError(f"{name}: no such module; check the name and the current directory")


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, bool):
        return int(code)
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def user_traceback(exc: BaseException) -> str:
    """The traceback as `python SCRIPT` would print it (chained exceptions included), with the
    frames of cnnprof and runpy above the script left out."""
    tb = exc.__traceback__
    entries = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    start = 0
    for i, entry in enumerate(entries):
        filename = entry.tb_frame.f_code.co_filename
        if os.path.abspath(filename) in _RUNNER_FILES or filename.startswith("<frozen runpy"):
            start = i + 1
    trimmed = entries[start] if start < len(entries) else None
    return "".join(traceback.format_exception(type(exc), exc, trimmed))
