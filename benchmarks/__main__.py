"""``python -m benchmarks [--quick]``: seedlab at the scale of the released studies
(see ``benchmarks/scale.py`` and docs/benchmarks.md)."""

import sys

from benchmarks.scale import main

sys.exit(main())
