"""Known failures, each with the exit code the CLI maps it to.

Every error message names what is wrong (table, column, key, value) and how to fix it; the CLI prints it
without a traceback and exits with `exit_code`.
"""

from __future__ import annotations


class ChurnError(Exception):
    """Base of the errors the CLI reports as a clear message and a non-zero exit code."""

    exit_code = 1


class ConfigError(ChurnError):
    """A config file or option is missing, malformed, or holds an unknown key or a bad value."""

    exit_code = 2


class DataValidationError(ChurnError):
    """Input tables break the data contract; `problems` lists each broken rule."""

    exit_code = 3

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        head = f"input data failed validation ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}):"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class StaleDataError(ChurnError):
    """The newest data is older than allowed before the as-of date."""

    exit_code = 4


class DriftError(ChurnError):
    """Feature distributions moved further from the training reference than allowed."""

    exit_code = 5


class ModelNotFoundError(ChurnError):
    """No registered model (or no champion) to score with."""

    exit_code = 6


class ExportError(ChurnError):
    """An export target refused or failed part of the delivery."""

    exit_code = 7


class OutputMissingError(ChurnError):
    """A stage needs an output an earlier stage has not produced yet (e.g. export before score)."""

    exit_code = 8
