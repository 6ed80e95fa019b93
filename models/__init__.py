"""Churn model: split, training, calibration, evaluation, explanations, drift, MLflow packaging and registry."""
