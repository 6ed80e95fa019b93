"""The logged model is self-contained: it loads by registry URI and predicts a feature table exactly as
`churn features` writes it, in this process, in a fresh virtual environment without churn-pipeline, and
behind `mlflow models serve`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from churn_pipeline.core.errors import DataValidationError
from churn_pipeline.data.io import atomic_write_parquet
from churn_pipeline.models.encoding import coerce_features
from churn_pipeline.models.registry import CHAMPION, log_churn_model, pip_requirements, register, use_tracking
from tests.models.synthetic import fit_churn_model, make_training_set

REPO = Path(__file__).resolve().parents[2]


def feature_table(test: pd.DataFrame) -> pd.DataFrame:
    """Rows of `test` in the dtypes `churn features` writes: customer_id and as_of beside the features,
    nullable Int64 counts (with NA), float64 with NaN, a `category` column and a plain-string one (with a
    missing value and a category never seen in training)."""
    frame = pd.DataFrame(
        {
            "customer_id": test["customer_id"].to_numpy(),
            "as_of": pd.to_datetime(test["snapshot_date"]).dt.date.to_numpy(),
        }
    )
    for name in ("tenure_days", "logins_30d", "complaints_30d"):
        frame[name] = pd.array(test[name].to_numpy(), dtype="Int64")
    frame.loc[::7, "logins_30d"] = pd.NA
    frame.loc[3::11, "complaints_30d"] = pd.NA
    frame["days_since_last_login"] = test["days_since_last_login"].to_numpy()
    frame["monthly_fee"] = test["monthly_fee"].to_numpy()
    frame["plan"] = pd.Categorical(test["plan"].to_numpy(), categories=sorted(test["plan"].cat.categories))
    frame.loc[5::13, "plan"] = np.nan
    region = test["region"].astype(object).to_numpy()
    region[::17] = "atlantis"
    frame["region"] = region
    return frame


@pytest.fixture(scope="module")
def registered(mlflow_store, tmp_path_factory):
    """A model registered as `portable-model@champion` and a feature parquet written like `churn features`."""
    uri, exp = mlflow_store
    model, split = fit_churn_model(make_training_set(n_customers=700, snapshots=4, seed=5))
    use_tracking(uri)
    with mlflow.start_run(experiment_id=exp) as run:
        info = log_churn_model(model, split.test)
    client = MlflowClient(uri, uri)
    version = register(client, info.model_uri, "portable-model", run.info.run_id)
    client.set_registered_model_alias("portable-model", CHAMPION, version)
    path = tmp_path_factory.mktemp("features") / "as_of=2024-09-01.parquet"
    atomic_write_parquet(feature_table(split.test), path)
    return model, path


def test_registry_uri_predicts_the_feature_table_as_written_like_in_process(registered):
    model, path = registered
    features = pd.read_parquet(path)
    assert isinstance(features["plan"].dtype, pd.CategoricalDtype)
    assert features["logins_30d"].dtype == "Int64" and features["logins_30d"].isna().any()

    loaded = mlflow.pyfunc.load_model(f"models:/portable-model@{CHAMPION}")
    got = np.asarray(loaded.predict(features), dtype=np.float64)

    expected = model.predict(None, features)  # what `churn score` computes
    assert got.shape == (len(features),)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # and what the training dtypes give: NA counts are LightGBM's missing, as NaN floats were in training
    typed = features.astype({c: "float64" for c in ("tenure_days", "logins_30d", "complaints_30d")})
    np.testing.assert_allclose(got, model.predict(None, typed), rtol=0, atol=1e-12)


def test_logged_model_carries_its_code_and_every_requirement(registered):
    local = Path(mlflow.artifacts.download_artifacts(f"models:/portable-model@{CHAMPION}"))
    package = local / "code" / "churn_pipeline"
    assert (package / "models" / "churn_model.py").is_file()
    assert (package / "core" / "errors.py").is_file()
    assert (package / "features" / "catalog.py").is_file()
    assert not (package / "stages").exists() and not list(package.rglob("__pycache__"))
    reqs = (local / "requirements.txt").read_text().split()
    assert reqs == pip_requirements()
    for dist in ("mlflow", "lightgbm", "scikit-learn", "scipy", "pandas", "numpy", "pydantic", "pyyaml"):
        assert any(r.startswith(f"{dist}==") for r in reqs), dist


def test_coerce_features_reads_objects_as_numbers_and_rejects_text():
    frame = pd.DataFrame(
        {"n": pd.Series([1, None, pd.NA, 2.5, True], dtype=object), "c": ["a", None, "b", "a", "z"], "x": 1}
    )
    out = coerce_features(frame, ["n", "c"], {"c": ["a", "b"]})
    assert out["n"].dtype == np.float64
    np.testing.assert_array_equal(out["n"].to_numpy(), [1.0, np.nan, np.nan, 2.5, 1.0])
    assert out["c"].tolist() == frame["c"].tolist() and "x" in out
    typed = pd.DataFrame({"n": pd.array([1, None], dtype="Int64")})
    assert coerce_features(typed, ["n"], {}) is typed, "typed columns are not copied"
    with pytest.raises(DataValidationError, match="'n' holds non-numbers.*'seven'"):
        coerce_features(pd.DataFrame({"n": [1, "seven"]}), ["n"], {})


# ------------------------------------------------------------------------------- trained on simulated data


@pytest.fixture(scope="module")
def company_model(trained, tmp_path_factory):
    """A real training on the simulated company (the shared `trained`) and the feature table of its last date,
    written by the same function `churn features` calls into a workdir of its own; the probabilities
    in-process."""
    from churn_pipeline.models.registry import load_model
    from churn_pipeline.stages.training_set import write_feature_table

    shared, _ = trained
    cfg = shared.model_copy(
        update={
            "workdir": tmp_path_factory.mktemp("portable") / "work",
            "tracking": shared.tracking.model_copy(update={"uri": shared.tracking_uri}),
        }
    )
    table = write_feature_table(cfg)
    model, _ = load_model(cfg.tracking_uri, cfg.tracking.registered_model)
    features = pd.read_parquet(table.path)
    return cfg, table.path, model, model.predict(None, features)


def _clean_env() -> dict[str, str]:
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    return {k: v for k, v in os.environ.items() if k not in drop}


_PREDICT = """
import sys
try:
    import churn_pipeline.models  # noqa
except ModuleNotFoundError:
    pass
else:
    sys.exit("churn-pipeline's models package is importable here: the test would prove nothing")
import mlflow.pyfunc, numpy as np, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
p = np.asarray(model.predict(pd.read_parquet(sys.argv[2])), dtype=np.float64)
np.save(sys.argv[3], p)
"""


def _fresh_venv(venv: Path, requirements: Path, env: dict[str, str]) -> Path:
    """A new virtual environment holding only `requirements` (and what they depend on), from the package
    index; its python. uv (a dev dependency) installs from its wheel cache in seconds where pip takes minutes;
    pip, if uv is missing, proves the same."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    uv = shutil.which("uv", path=Path(sys.executable).parent) or shutil.which("uv")
    if uv:
        install = [uv, "pip", "install", "--quiet", "--python", str(py)]
    else:
        subprocess.run([str(py), "-m", "ensurepip", "--default-pip"], check=True, timeout=300, env=env)
        install = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*install, "-r", str(requirements)], check=True, timeout=1200, env=env, cwd=venv.parent)
    return py


@pytest.mark.slow
def test_model_loads_and_predicts_in_a_fresh_venv_without_the_project(company_model, tmp_path):
    cfg, features_path, model, _ = company_model
    use_tracking(cfg.tracking_uri)
    model_dir = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{cfg.tracking.registered_model}@{CHAMPION}", dst_path=str(tmp_path / "export")
        )
    )
    outside = tmp_path / "elsewhere"  # not the repository: nothing of churn-pipeline on sys.path
    outside.mkdir()
    # the table as written, plus what other producers of it add: an as_of column and an integer feature that
    # arrives as nullable Int64 with NA
    features = pd.read_parquet(features_path)
    assert any(isinstance(d, pd.CategoricalDtype) for d in features.dtypes)
    counts = next(c for c in model.feature_names if features[c].dtype == np.int64)
    features[counts] = features[counts].astype("Int64")
    features.loc[features.index[::9], counts] = pd.NA
    features.insert(1, "as_of", pd.Timestamp("2024-12-31").date())
    atomic_write_parquet(features, outside / "features.parquet")
    expected = model.predict(None, features)
    venv = tmp_path / "venv"
    env = _clean_env()

    start = time.perf_counter()
    py = _fresh_venv(venv, model_dir / "requirements.txt", env)
    installed = time.perf_counter() - start
    out = outside / "p.npy"
    done = subprocess.run(
        [str(py), "-I", "-c", _PREDICT, str(model_dir), str(outside / "features.parquet"), str(out)],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(
        f"fresh venv: install {installed:.0f} s, load+predict {time.perf_counter() - start - installed:.1f} s"
    )
    got = np.load(out)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_models_serve_answers_invocations(company_model, tmp_path):
    cfg, features_path, _, expected = company_model
    bindir = Path(sys.executable).parent  # `python -m mlflow`: no console script needed in the venv
    port = _free_port()
    env = {**_clean_env(), "MLFLOW_TRACKING_URI": cfg.tracking_uri, "MLFLOW_REGISTRY_URI": cfg.tracking_uri}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"  # the server runs `uvicorn` from PATH
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{cfg.tracking.registered_model}@{CHAMPION}",
         "--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "server did not answer /ping within 120 s"
            time.sleep(0.5)
        rows = pd.read_parquet(features_path).head(50)
        # Python's float repr round-trips exactly (pandas' to_json keeps at most 15 digits, which moves a value
        # sitting on a learnt bin edge or split threshold to the other side)
        data = rows.astype(object).where(rows.notna(), None).to_numpy().tolist()
        split = json.loads(json.dumps({"columns": list(rows.columns), "data": data}, default=str))
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"dataframe_split": split}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            got = np.asarray(json.loads(r.read())["predictions"], dtype=np.float64)
        np.testing.assert_allclose(got, expected[:50], rtol=0, atol=1e-12)
    finally:
        _stop(server)
        log.close()


def _stop(server: subprocess.Popen) -> None:
    """Stop the server's process group (mlflow -> bash -> uvicorn), with bounded waits."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 30)):
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(server.pid, sig)
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
