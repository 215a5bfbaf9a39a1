"""The live panel in a real terminal (tmux): it shows, its numbers change, and the terminal is
usable afterwards, whether the run ends by itself or by Ctrl-C.

Robust to a slow machine: every wait polls the pane up to a generous deadline and asserts on what
the pane shows, never on how long it took.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "scripts" / "live_loop.py"
DEADLINE_S = 90.0

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is absent: `apt-get install tmux`")


class Pane:
    def __init__(self, name: str) -> None:
        self.name = name

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout

    def text(self, history: bool = False) -> str:
        """The screen; with `history`, the lines scrolled off above it too."""
        return self.tmux("capture-pane", "-p", "-t", self.name, *(["-S", "-"] if history else []))

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-t", self.name, "-l", line)
        self.tmux("send-keys", "-t", self.name, "Enter")

    def wait_for(self, check: Callable[[str], object], what: str) -> str:
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            text = self.text()
            if check(text):
                return text
            time.sleep(0.3)
        raise AssertionError(f"the pane never showed {what}:\n{self.text()}")

    def flag(self, name: str) -> str:
        return self.tmux("display", "-p", "-t", self.name, f"#{{{name}}}").strip()


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[Pane]:
    name = f"cnnprof-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", name, "-x", "110", "-y", "40", "bash --norc --noprofile"],
        check=True,
        cwd=tmp_path,
    )
    p = Pane(name)
    p.type("PS1='$ '; stty -g > stty.before; clear")
    try:
        yield p
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], check=False)


def _command(tmp_path: Path) -> str:
    argv = [
        sys.executable, "-m", "cnnprof.cli", "profile", "--live", "--telemetry", "procfs",
        "--telemetry-interval-ms", "100", "--profiler", "none", "--no-report", "--out", str(tmp_path / "runs"),
        "--", str(SCRIPT), str(tmp_path / "stop"),
    ]  # fmt: skip
    return f"PYTHONPATH={shlex.quote(str(ROOT))} " + shlex.join(argv) + "; echo EXIT=$?"


def _steps(text: str) -> int | None:
    m = re.search(r"steps\s+([\d,]+) done", text)
    return int(m.group(1).replace(",", "")) if m else None


def _exit_code(text: str) -> str | None:
    m = re.search(r"^EXIT=(\d+)", text, re.MULTILINE)  # at a line's start: not the typed command
    return m.group(1) if m else None


def _check_clean(pane: Pane, tmp_path: Path) -> None:
    assert pane.flag("cursor_flag") == "1"  # rich hid the cursor while drawing; it is back
    assert pane.flag("alternate_on") == "0"
    pane.type("stty -g > stty.after; echo typed-$((20+22))")
    pane.wait_for(lambda t: "typed-42" in t, "the shell's answer to a typed command")
    assert (tmp_path / "stty.after").read_text() == (tmp_path / "stty.before").read_text()


def test_panel_shows_changing_numbers_and_leaves_the_terminal_clean(pane: Pane, tmp_path: Path) -> None:
    pane.type(_command(tmp_path))
    first = pane.wait_for(lambda t: "cnnprof live" in t and (_steps(t) or 0) > 0, "the panel with steps")
    assert "CPU" in first and "so far:" in first and "memory" in first
    n = _steps(first) or 0
    # Past step 50, the script has printed a line too (shown above the panel).
    later = pane.wait_for(lambda t: (_steps(t) or 0) > max(n + 5, 55), "the step count going up")
    assert re.search(r"\d+\.\d/s", later)  # a steps-per-second figure
    (tmp_path / "stop").touch()
    done = pane.wait_for(_exit_code, "the end of the run")
    assert _exit_code(done) == "0" and "loop done True" in done
    assert "live view stopped" not in done
    history = pane.text(history=True)
    assert "step 50\n" in history and history.count("cnnprof live") == 1  # prints above one panel
    _check_clean(pane, tmp_path)


def test_ctrl_c_ends_the_run_and_leaves_the_terminal_clean(pane: Pane, tmp_path: Path) -> None:
    pane.type(_command(tmp_path))
    pane.wait_for(lambda t: (_steps(t) or 0) > 0, "the panel with steps")
    pane.tmux("send-keys", "-t", pane.name, "C-c")
    done = pane.wait_for(_exit_code, "the end of the run")
    assert _exit_code(done) == "130" and "interrupted" in done
    assert "Traceback" not in done
    run_json = next((tmp_path / "runs").glob("*/run.json")).read_text()
    assert '"status": "interrupted"' in run_json
    _check_clean(pane, tmp_path)


@pytest.mark.slow
def test_run_live_shows_the_position_and_the_epoch_lines(pane: Pane, tmp_path: Path) -> None:
    argv = [
        sys.executable, "-m", "cnnprof.cli", "run", "--live", "--backend", "torch_cpu", "--epochs", "1",
        "--batch-size", "64", "--train-images", "6400", "--test-images", "64", "--single-inference", "4",
        "--telemetry", "procfs", "--profiler", "none", "--no-report", "--out", str(tmp_path / "runs"),
    ]  # fmt: skip
    # 100 training steps (~4 s here, longer on a slower machine): the position is on screen for
    # many of the pane's polls; with 10 (0.5 s) a loaded machine once polled past all of them.
    pane.type(f"PYTHONPATH={shlex.quote(str(ROOT))} " + shlex.join(argv) + "; echo EXIT=$?")
    pane.wait_for(lambda t: re.search(r"epoch 1/1 train \d+/\d+", t) and (_steps(t) or 0) > 0, "the position")
    assert _exit_code(pane.wait_for(_exit_code, "the end of the run")) == "0"
    done = pane.text(history=True)
    assert re.search(r"^epoch 1/1: [\d.]+ s", done, re.MULTILINE) and "epochs completed" in done
    _check_clean(pane, tmp_path)


def test_watch_follows_a_run_started_elsewhere_until_it_ends(pane: Pane, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    argv = [sys.executable, "-m", "cnnprof.cli", "profile", "--telemetry", "procfs", "--profiler", "none",
            "--no-report", "--out", str(runs), "--", str(SCRIPT), str(tmp_path / "stop")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        end = time.monotonic() + DEADLINE_S
        while not list(runs.glob("*/run.json")) and time.monotonic() < end:
            time.sleep(0.2)
        (run_dir,) = [p.parent for p in runs.glob("*/run.json")]
        watch = [sys.executable, "-m", "cnnprof.cli", "watch", str(run_dir)]
        pane.type(f"PYTHONPATH={shlex.quote(str(ROOT))} " + shlex.join(watch) + "; echo EXIT=$?")
        # Telemetry and, from the run's span stream, its steps.
        pane.wait_for(
            lambda t: "cnnprof live · live_loop.py" in t and "CPU" in t and (_steps(t) or 0) > 0,
            "the panel of the other run with its steps",
        )
        (tmp_path / "stop").touch()
        assert run.wait(timeout=DEADLINE_S) == 0
    finally:
        run.kill()
    done = pane.wait_for(_exit_code, "watch ending with the run")
    assert _exit_code(done) == "0" and "the run is complete" in done
    _check_clean(pane, tmp_path)
