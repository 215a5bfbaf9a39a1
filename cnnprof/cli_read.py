"""The subcommands that read what exists (a run directory, a saved capture, this machine) and
write nothing but their output: `report`, `diagnose`, `export`, `watch`, `doctor`, `telemetry`."""

from __future__ import annotations

import argparse
import sys

from . import terminal


# -- report, diagnose, export -----------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    import webbrowser

    from .reports.html import report_command
    from .traces.job import is_job_dir

    if len(args.run_dirs) == 1 and is_job_dir(args.run_dirs[0]):
        from .reports.job_report import build_job_report
        from .traces.job import JobData

        job_dir = args.run_dirs[0]
        path = build_job_report(JobData(job_dir), args.output or job_dir / "report.html")
    else:
        path = report_command(args.run_dirs, args.output)
    print(path)
    if args.open:
        webbrowser.open(path.resolve().as_uri())
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    from .reports.diagnosis import diagnose, diagnosis_json, diagnosis_table
    from .traces.job import is_job_dir
    from .traces.reader import RunData

    if is_job_dir(args.run_dir):
        from .reports.diagnosis.job import diagnose_job, job_json
        from .reports.job_report import print_job_findings
        from .traces.job import JobData

        job = JobData(args.run_dir)
        if args.json:
            print(job_json(diagnose_job(job)))
        else:
            print_job_findings(job, terminal.console)
        return 0
    run = RunData(args.run_dir)
    diagnosis = diagnose(run)
    if args.json:
        print(diagnosis_json(diagnosis))
        return 0
    for note in run.notes:
        terminal.console.print(f"note: {note}", markup=False)
    terminal.console.print(diagnosis_table(diagnosis), soft_wrap=False)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .traces.export import export_command

    print(export_command(args.run_dir, args.format, args.output))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from .live.view import watch

    state = watch(args.run_dir, terminal.console)
    terminal.console.print(f"cnnprof watch: the run is {state.status}: {args.run_dir}", markup=False)
    return 0


# -- doctor ------------------------------------------------------------------------------------
def cmd_doctor(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from .models.backends import BACKENDS, probe_backend

    table = Table(title="backends")
    for column in ("backend", "status", "device / reason", "fix"):
        table.add_column(column)
    for name in BACKENDS:
        s = probe_backend(name)
        if s.available:
            table.add_row(name, "[green]available[/]", f"{s.device_name} ({s.framework} {s.framework_version})", "")
        else:
            table.add_row(name, "[red]unavailable[/]", escape(s.reason), escape(s.fix))
    terminal.console.print(table)

    from .profiler.telemetry import available_sources

    sources = Table(title="telemetry sources")
    for column in ("source", "status", "reason", "fix"):
        sources.add_column(column)
    for name, status in available_sources().items():
        if status.ok:
            sources.add_row(name, "[green]available[/]", "", "")
        else:
            sources.add_row(name, "[red]unavailable[/]", escape(status.reason), escape(status.fix))
    terminal.console.print(sources)
    return 0


# -- telemetry -----------------------------------------------------------------------------------
def cmd_telemetry_parse_powermetrics(args: argparse.Namespace) -> int:
    from .profiler.telemetry import parse_powermetrics_command

    return parse_powermetrics_command(args.file, args.csv, sys.stdout)
