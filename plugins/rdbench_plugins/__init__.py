"""rdbench's built-in plugins.

Each subpackage is one plugin, registered through the public ``rdbench`` entry-point group
in ``pyproject.toml`` exactly as a third-party plugin would be; the framework never imports
these modules by name. A plugin's ``__init__`` only declares records (cheap to import); the
work lives in the modules its records' factories point to. Modules whose names start with
an underscore (``_networks``, ``_optimization``, ``_lagrange``, ``_conv``) are shared helpers, not plugins.
"""
