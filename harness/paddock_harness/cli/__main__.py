"""`python -m paddock_harness.cli`: the same as the kubectl-paddock console script."""

import sys

from . import main

sys.exit(main())
