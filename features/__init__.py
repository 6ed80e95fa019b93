"""Feature and label definitions: point-in-time ibis expressions over the contract tables, one module per family."""
