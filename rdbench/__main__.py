"""``python -m rdbench``: the same as the ``rdbench`` command."""

from rdbench.cli import main

if __name__ == "__main__":
    main(prog_name="rdbench")
