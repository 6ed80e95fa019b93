"""Churn model: split, training, calibration, evaluation, explanations, drift, MLflow packaging and registry."""

import os

# LightGBM's OpenMP threads spin while idle by default; on a shared machine that turns a 3 s fit into 15+ s.
# Passive waiting must be chosen before the OpenMP runtime loads (first `import lightgbm`); an explicit
# setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
