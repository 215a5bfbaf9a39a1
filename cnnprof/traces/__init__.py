"""The on-disk run format: schema, writer, reader (and exports/imports beside them)."""
