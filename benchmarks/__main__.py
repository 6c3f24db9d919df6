"""``python -m benchmarks [--quick]``: seedlab at the scale of the released studies
(see ``benchmarks/scale.py`` and docs/benchmarks.md).

``python -m benchmarks trainer [options]``: fine-tuning throughput against Hugging Face's
``Trainer`` (``benchmarks/trainer_bench.py``; also ``python -m benchmarks.trainer_bench``)."""

import sys

if sys.argv[1:2] == ["trainer"]:
    from benchmarks.trainer_bench import main as trainer_main

    sys.exit(trainer_main(sys.argv[2:]))

from benchmarks.scale import main

sys.exit(main())
