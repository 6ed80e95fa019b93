"""Stages: read inputs, call features/ and models/, write outputs (training set, train, evaluate, score, export)."""
