"""Run every benchmark (`python -m bench`, or `python -m bench features score` for some)."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

from rich.console import Console

from churn_pipeline.core.runtime import configure_process

ORDER = ("simulate", "features", "score", "spark", "train", "quality", "uplift")


def main(argv: list[str]) -> int:
    configure_process()  # spawned benchmark processes inherit it
    names = argv or [n for n in ORDER if (Path(__file__).parent / f"bench_{n}.py").exists()]
    console = Console()
    for name in names:
        console.rule(f"bench {name}")
        started = time.perf_counter()
        importlib.import_module(f"bench.bench_{name}").main()
        console.print(f"bench {name} done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
