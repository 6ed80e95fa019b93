"""Config loading: the shipped configs load; unknown keys and bad values are errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from churn_pipeline.core.config import Config, config_reference, load_config
from churn_pipeline.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["default.yaml", "demo.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.features.windows == (7, 30, 90)


def test_default_yaml_matches_builtin_defaults():
    # default.yaml documents the defaults; it must not drift from the code.
    assert load_config(ROOT / "configs" / "default.yaml") == Config()


def test_readme_config_reference_is_current_and_complete():
    reference = config_reference()
    assert reference in (ROOT / "README.md").read_text(), (
        "README Config reference is stale: paste `python -m churn_pipeline.core.config`"
    )
    undocumented = [line for line in reference.splitlines()[2:] if line.endswith("|  |")]
    assert not undocumented, f"config keys without a description: {undocumented}"


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'label.horizon'"):
        load_config(write(tmp_path, "label:\n  horizon: 30\n"))


def test_unknown_section_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'labels'"):
        load_config(write(tmp_path, "labels:\n  kind: cancellation\n"))


def test_bad_value_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"label.kind: .*'cancellation' or 'inactivity'.*got 'churned'"):
        load_config(write(tmp_path, "label:\n  kind: churned\n"))


def test_bad_windows(tmp_path):
    with pytest.raises(ConfigError, match=r"features.windows"):
        load_config(write(tmp_path, "features:\n  windows: [30, 30]\n"))


def test_drift_thresholds_ordered(tmp_path):
    with pytest.raises(ConfigError, match=r"warn_psi \(0.5\) must not exceed fail_psi \(0.2\)"):
        load_config(write(tmp_path, "scoring:\n  drift: {warn_psi: 0.5, fail_psi: 0.2}\n"))


def test_tiers_must_increase(tmp_path):
    text = "scoring:\n  tiers:\n    - {name: a, top_pct: 10}\n    - {name: b, top_pct: 5}\n"
    with pytest.raises(ConfigError, match=r"scoring.tiers"):
        load_config(write(tmp_path, text))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "label: [unclosed\n"))
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_config_is_frozen():
    cfg = Config()
    with pytest.raises(ValueError):
        cfg.workdir = Path("elsewhere")  # type: ignore[misc]


def test_overrides_and_tracking_uri(tmp_path):
    cfg = Config().with_overrides(data=tmp_path / "d", out=tmp_path / "w")
    assert cfg.data.source == tmp_path / "d"
    assert cfg.tracking_uri == f"sqlite:///{(tmp_path / 'w' / 'mlflow.db').resolve()}"
    assert cfg.export_dir == tmp_path / "w" / "exports"


def test_engine_override_is_validated_and_keeps_the_rest(tmp_path):
    base = Config().with_overrides(data=tmp_path / "d")
    on_spark = base.with_overrides(engine="spark")
    assert (on_spark.data.engine, base.data.engine) == ("spark", "duckdb")
    assert on_spark.data.source == tmp_path / "d"
    assert on_spark.with_overrides(data=tmp_path / "e", engine="duckdb").data.engine == "duckdb"
    with pytest.raises(ConfigError, match="--engine 'sparky'"):
        base.with_overrides(engine="sparky")
