"""An example third-party rdbench plugin (see the package README)."""
