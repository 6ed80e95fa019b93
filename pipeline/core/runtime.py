"""Process-wide settings that must be in place before third-party libraries load: set once by each entry
point (the `churn` command, the test session, the benchmarks), never as a side effect of importing a module."""

from __future__ import annotations

import os


def configure_process() -> None:
    """Set environment defaults the libraries read when they first load; an explicit setting wins."""
    # LightGBM's OpenMP threads spin while idle by default; on a shared machine that turns a 3 s fit into 15+ s.
    # Passive waiting must be chosen before the OpenMP runtime loads (the first `import lightgbm`).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # MLflow sets its log level when first imported: keep its INFO chatter out of the commands' output.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # MLflow draws a tqdm bar per artifact download (the report reads a run's plots): noise in a command's output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
