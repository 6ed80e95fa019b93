"""A simulated company with known churn drivers (for the demo, tests and benchmarks) and its oracle."""
