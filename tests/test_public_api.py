"""The built-in plugins use rdbench only through its public modules, and the README names them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import rdbench

ROOT = Path(__file__).resolve().parents[1]


def _rdbench_imports(path: Path) -> set[str]:
    """Every rdbench module ``path`` imports (``from rdbench.x import y``, ``import rdbench.x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {n for n in names if n == "rdbench" or n.startswith("rdbench.")}
    return found


def test_built_in_plugins_import_only_public_modules():
    used = {}
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        for module in _rdbench_imports(path):
            used.setdefault(module, []).append(str(path.relative_to(ROOT)))
    private = {m: files for m, files in used.items() if m not in rdbench.PUBLIC_MODULES}
    assert not private, f"plugins import non-public rdbench modules: {private}"
    assert {"rdbench.settings", "rdbench.units", "rdbench.distortion"} <= set(used)


def test_the_readme_names_exactly_the_public_modules():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Write a plugin") : readme.index("## Layout")]
    rows = re.findall(r"^\| `(rdbench[a-z_.]*)` \|", section, flags=re.M)
    assert rows == list(rdbench.PUBLIC_MODULES)


def test_a_private_import_is_caught(tmp_path):
    plugin = tmp_path / "p.py"
    plugin.write_text("from rdbench.runner import plan\nimport rdbench.store\nfrom rdbench import hookimpl\n")
    assert _rdbench_imports(plugin) - set(rdbench.PUBLIC_MODULES) == {"rdbench.runner", "rdbench.store"}
