"""Prints what `python SCRIPT ARGS` would see, as JSON (tests of run_user_code)."""

import json
import os
import sys

print(json.dumps({"name": __name__, "argv": sys.argv, "path0": sys.path[0], "file": __file__, "cwd": os.getcwd()}))
if len(sys.argv) > 1 and sys.argv[1] == "exit":
    sys.exit(sys.argv[2] if len(sys.argv) > 2 and not sys.argv[2].isdigit() else int(sys.argv[2]))
