"""What cnnprof prints: progress while a run trains, and the closing table (rich).

rich (~50-100 ms to import) is imported on first use: `cnnprof profile` prints nothing through it
before the profiled script starts (benchmarks/fixed_cost.py), so `console` is made the first time
it is read: the commands read it as `terminal.console` where they print, not at their import."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    console: Console

    from .traces.record import RunRecord


def __getattr__(name: str) -> Any:
    """`terminal.console`: the one rich Console (on stderr), made the first time it is read."""
    if name != "console":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rich.console import Console

    made = globals()["console"] = Console(stderr=True, highlight=False, soft_wrap=True)
    return made


def _console() -> Console:
    made: Console | None = globals().get("console")
    return made if made is not None else __getattr__("console")


def plain_line(message: str) -> None:
    """A line on stderr where the console would print it, without making the console."""
    print(message, file=sys.stderr, flush=True)


def error_line(message: str) -> None:
    """The one line a user-caused error prints (plain, never wrapped, on stderr)."""
    print(f"cnnprof: error: {message}", file=sys.stderr)


class ProgressEvents:
    """The loops' LoopEvents as a rich progress bar per phase, and one line per finished epoch."""

    def __init__(self, epochs: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.epochs = epochs
        self.progress = Progress(
            TextColumn("{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_console(),
            transient=True,
        )
        self.task: Any = None

    def __enter__(self) -> ProgressEvents:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def phase_started(self, phase: str, total: int, epoch: int | None) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        where = f"epoch {epoch}/{self.epochs} " if epoch else ""
        self.task = self.progress.add_task(f"{where}{phase}", total=total)

    def advanced(self) -> None:
        self.progress.advance(self.task)

    def epoch_finished(self, row: dict[str, Any]) -> None:
        self.progress.console.print(epoch_line(row, self.epochs))


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    """The line a finished epoch prints (under the progress bar or the live panel)."""
    return (
        f"epoch {row['epoch']}/{epochs}: {row['epoch_s']:.2f} s, {row['images_per_s']:,.0f} img/s, "
        f"train loss {row['train_loss']:.4f} acc {100 * row['train_acc']:.1f} %, "
        f"val loss {row['val_loss']:.4f} acc {100 * row['val_acc']:.1f} %"
    )


def _fmt(value: Any, spec: str, scale: float = 1.0, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value * scale if scale != 1.0 else value:{spec}}{unit}"


def summary_table(record: RunRecord) -> Table:
    """The closing table of `cnnprof run`: the study's figures for this run."""
    from rich.markup import escape
    from rich.table import Table

    s = record.summary
    title = f"{record.backend.name or '?'} ({record.backend.device_name}), loop {record.config.get('loop')}"
    table = Table(title=escape(title))
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("epochs completed", _fmt(s.get("epochs_completed"), "d")),
        (
            "epoch time min / median / max",
            " / ".join(
                _fmt(s.get(k), ".2f", unit=" s") for k in ("epoch_s_min", "epoch_s_median", "epoch_s_max")
            ),
        ),
        ("images/s (median epoch)", _fmt(s.get("images_per_s_median"), ",.0f")),
        ("test set, batched", _fmt(s.get("test_ms"), ",.1f", unit=" ms")),
        ("single-image inference", _fmt(s.get("single_ms_per_image"), ".3f", unit=" ms/image")),
        (
            "final train loss / acc",
            f"{_fmt(s.get('final_train_loss'), '.4f')} / {_fmt(s.get('final_train_acc'), '.1f', 100, ' %')}",
        ),
        (
            "final val loss / acc",
            f"{_fmt(s.get('final_val_loss'), '.4f')} / {_fmt(s.get('final_val_acc'), '.1f', 100, ' %')}",
        ),
        ("test accuracy", _fmt(s.get("test_accuracy"), ".1f", 100, " %")),
    ]
    for key, joules in sorted(s.items()):
        if key.startswith("train_energy_j."):
            rows.append((f"training energy, {key.removeprefix('train_energy_j.')}", f"{joules:,.1f} J"))
    for name, value in rows:
        table.add_row(name, value)
    return table
