"""The live view: a terminal panel that follows a run while it goes (`--live`, `cnnprof watch`)."""
