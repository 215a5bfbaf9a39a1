"""Observing a run: spans, stack samples, sync hooks, telemetry (docs/ARCHITECTURE.md)."""

# The `--profiler` modes (profiler/stacks.py runs them); here so the CLI can offer them without
# importing the profilers and pyarrow.
PROFILER_MODES = ("sampler", "pyinstrument", "cprofile", "both", "none")
DEFAULT_PROFILER = "sampler"
