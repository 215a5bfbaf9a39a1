"""`python -m cnnprof` (and `torchrun ... -m cnnprof profile -- SCRIPT`): the `cnnprof` command."""

import sys

from .cli import main

sys.exit(main())
