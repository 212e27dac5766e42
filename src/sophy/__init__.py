"""sophy: Python bindings to the Sophia 2.2 storage engine."""
