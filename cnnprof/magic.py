"""The IPython extension: `%load_ext cnnprof`, then

    %%cnnprof [--telemetry auto] [--profiler sampler] [--out DIR] ...
    train(model, loader)

profiles the cell as `cnnprof.profile()` would and shows the findings and the report inline (the
report's self-contained HTML in an iframe's `srcdoc`, so it works offline, as the file does);
`%cnnprof_report RUN_DIR` shows an existing run the same way.

Each output carries a text form too, so a terminal IPython prints the findings table.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .errors import UserError

IFRAME_HEIGHT_PX = 720


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext cnnprof` calls this."""
    ipython.register_magics(CnnprofMagics)


@magics_class
class CnnprofMagics(Magics):
    @magic_arguments()
    @argument("--out", default="cnnprof-runs", help="where run directories are created (default: ./cnnprof-runs)")
    @argument("--label", default="cell", help="the run directory's suffix (default: cell)")
    @argument("--telemetry", default="auto", help="auto, none, or a comma list of powermetrics,nvml,procfs,rapl")
    @argument("--telemetry-interval-ms", type=int, default=100, help="telemetry sampling interval (default: 100)")
    @argument("--profiler", default="sampler", help="sampler, pyinstrument, cprofile, both or none (default: sampler)")
    @argument("--profile-interval-ms", type=float, default=1.0, help="stack sampling interval (default: 1)")
    @argument("--no-report", action="store_true", help="show the findings only, no report")
    @argument("--height", type=int, default=IFRAME_HEIGHT_PX, help="the report frame's height in pixels")
    @cell_magic
    def cnnprof(self, line: str, cell: str) -> None:
        """Profile this cell with cnnprof and show its findings and report."""
        from .api import Profile

        args = parse_argstring(self.cnnprof, line)
        try:
            run = Profile(
                args.out,
                label=args.label,
                telemetry=args.telemetry,
                telemetry_interval_ms=args.telemetry_interval_ms,
                profiler=args.profiler,
                profile_interval_ms=args.profile_interval_ms,
                report=not args.no_report,
                show=False,
            )
            failure: BaseException | None = None
            try:
                with run:
                    result = self.shell.run_cell(cell, store_history=False)
                    # IPython has shown the cell's error already; raising it here records the
                    # run as failed (or interrupted), and it is not shown twice.
                    failure = result.error_before_exec or result.error_in_exec
                    if failure is not None:
                        raise failure
            except BaseException as exc:
                if exc is not failure:
                    raise
                _show_status(run.run_dir, run.status)
                return
        except UserError as exc:
            raise UsageError(str(exc)) from None
        _show_run(run.run_dir, args.height)

    @magic_arguments()
    @argument("run_dir", help="a run directory written by cnnprof")
    @argument("--height", type=int, default=IFRAME_HEIGHT_PX, help="the report frame's height in pixels")
    @line_magic
    def cnnprof_report(self, line: str) -> None:
        """Show the findings and the report of an existing run directory."""
        args = parse_argstring(self.cnnprof_report, line)
        try:
            _show_run(Path(args.run_dir).expanduser(), args.height)
        except UserError as exc:
            raise UsageError(str(exc)) from None


def _show_status(run_dir: Path, status: str) -> None:
    from IPython.display import display

    text = f"cnnprof: the cell ended {status}; what was recorded is kept in {run_dir}"
    display({"text/plain": text, "text/html": f"<p>{html.escape(text)}</p>"}, raw=True)


def _show_run(run_dir: Path, height: int) -> None:
    """The run's findings, then its report in a frame (written first if it is missing)."""
    from IPython.display import display
    from rich.console import Console

    from .reports.diagnosis import diagnosis_table
    from .reports.findings_view import findings_html, run_diagnosis, verdict_html
    from .reports.html import build_report
    from .traces import schema
    from .traces.reader import RunData

    run = RunData(run_dir)
    diagnosis, why_none = run_diagnosis(run)
    findings = diagnosis.findings if diagnosis else []
    verdict = f"verdict {diagnosis.verdict.id}, " if diagnosis else ""
    head = f"cnnprof: {run_dir} ({run.record.status}), {verdict}{len(findings)} finding(s)"
    console = Console(record=True, width=110, file=io.StringIO())
    if diagnosis is not None:
        console.print(diagnosis_table(diagnosis))
    display(
        {
            "text/plain": head + "\n" + console.export_text(),
            "text/html": f"<p><b>{html.escape(head)}</b></p>"
            + verdict_html(diagnosis)
            + findings_html(findings, why_none, compact=True),
        },
        raw=True,
    )
    report = run_dir / schema.REPORT
    if not report.exists():
        build_report([run_dir], report)
    frame = (
        f'<iframe srcdoc="{html.escape(report.read_text(encoding="utf-8"), quote=True)}" '
        f'style="width:100%;height:{height}px;border:1px solid #ccc" title="cnnprof report"></iframe>'
    )
    display({"text/plain": f"report: {report}", "text/html": frame}, raw=True)
