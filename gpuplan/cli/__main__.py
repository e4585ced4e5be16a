"""`python -m gpuplan.cli`: the same command as the `gpuplan` script."""

from __future__ import annotations

import sys

from gpuplan.cli import main

sys.exit(main())
