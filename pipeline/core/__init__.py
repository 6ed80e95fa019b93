"""Base layer: configuration, errors, the one list of tables and columns, progress. Imports nothing of the project."""
