"""Plugin discovery through entry points: failures are reported and skipped."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from rdbench.cli import main
from rdbench.registry import PluginError, Registry, get_registry

GOOD = """
from rdbench import SourceRecord, hookimpl

@hookimpl
def rdbench_sources():
    return [SourceRecord("toy-extra-source", "a toy", "toy_good:make")]
"""


def _plugins_json(*args: str) -> dict[str, dict]:
    get_registry(refresh=True)
    result = CliRunner().invoke(main, [*args, "plugins", "--json"])
    assert result.exit_code == 0, result.output
    return {p["name"]: p for p in json.loads(result.output)}


def test_builtin_plugins_are_found_through_entry_points():
    registry = Registry.discover(strict=True)
    names = {p.name: p for p in registry.plugins}
    assert names["analytic-sources"].distribution == "rdbench"
    assert names["analytic-sources"].status == "active"
    assert "gaussian-m20" in registry.entries("source")
    assert "blahut-arimoto" in registry.entries("estimator")


def test_listing_plugins_does_not_import_torch():
    code = (
        "import sys; from rdbench.registry import get_registry; r = get_registry(); "
        "[e.record for k in ('source','estimator','codec') for e in r.entries(k).values()]; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_installed_distribution_that_raises_on_import_is_reported_and_skipped(plugin_site, tmp_path):
    """A real throwaway distribution, installed with pip, whose entry point raises."""
    src = tmp_path / "src"
    (src / "broken_rdbench_plugin").mkdir(parents=True)
    (src / "broken_rdbench_plugin" / "__init__.py").write_text("raise RuntimeError('plugin is broken on purpose')\n")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "broken-rdbench-plugin"\nversion = "0.0.1"\n'
        '[project.entry-points.rdbench]\nbroken = "broken_rdbench_plugin"\n'
        '[tool.setuptools]\npackages = ["broken_rdbench_plugin"]\n'
    )
    try:
        import setuptools  # noqa: F401

        isolation = ["--no-build-isolation"]
    except ImportError:
        isolation = []
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            *isolation,
            "--target",
            str(plugin_site.root),
            str(src),
        ],
        check=True,
    )
    plugins = _plugins_json()
    assert plugins["broken"]["status"] == "error"
    assert plugins["broken"]["distribution"] == "broken-rdbench-plugin"
    assert "plugin is broken on purpose" in plugins["broken"]["error"]
    assert plugins["analytic-sources"]["status"] == "active"

    listing = subprocess.run([sys.executable, "-m", "rdbench.cli", "list", "sources"], capture_output=True, text=True)
    assert listing.returncode == 0
    assert "gaussian-m20" in listing.stdout
    assert "broken-rdbench-plugin" in listing.stderr  # the warning names the distribution

    strict = subprocess.run(
        [sys.executable, "-m", "rdbench.cli", "--strict-plugins", "list", "sources"], capture_output=True, text=True
    )
    assert strict.returncode != 0
    assert "broken-rdbench-plugin" in strict.stderr
    env_strict = subprocess.run(
        [sys.executable, "-m", "rdbench.cli", "list", "sources"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "RDBENCH_STRICT_PLUGINS": "1"},
    )
    assert env_strict.returncode != 0


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (
            "from rdbench import hookimpl\n@hookimpl\ndef rdbench_sources():\n    raise ValueError('hook exploded')\n",
            "hook exploded",
        ),
        (
            "from rdbench import hookimpl\n@hookimpl\ndef rdbench_sources():\n    return ['not a record']\n",
            "malformed record",
        ),
        (
            "from rdbench import SourceRecord, hookimpl\n@hookimpl\ndef rdbench_sources():\n"
            "    return [SourceRecord('Bad Name!', 'x', 'a:b')]\n",
            "must match",
        ),
        (
            "from rdbench import SourceRecord, hookimpl\n@hookimpl\ndef rdbench_sources():\n"
            "    return [SourceRecord('ok-name', 'x', 'no-colon')]\n",
            "module:callable",
        ),
        ("from rdbench import hookimpl\n@hookimpl\ndef rdbench_sourcez():\n    return []\n", "invalid hook"),
    ],
)
def test_bad_plugins_are_reported_and_skipped(plugin_site, code, message):
    plugin_site.add("rdbench-bad", {"bad": "toy_bad"}, {"toy_bad": code})
    plugin_site.add("rdbench-good", {"good": "toy_good"}, {"toy_good": GOOD})
    registry = Registry.discover(strict=False)
    info = {p.name: p for p in registry.plugins}
    assert info["bad"].status == "error"
    assert message in info["bad"].error
    assert info["bad"].distribution == "rdbench-bad"
    assert info["good"].status == "active"
    assert "toy-extra-source" in registry.entries("source")
    with pytest.raises(PluginError, match="rdbench-bad"):
        Registry.discover(strict=True)


def test_duplicate_names_are_refused_naming_both_providers(plugin_site):
    dup = GOOD.replace("toy-extra-source", "gaussian-m20")
    plugin_site.add("rdbench-dup", {"zz-dup": "toy_good"}, {"toy_good": dup})
    registry = Registry.discover(strict=False)
    info = {p.name: p for p in registry.plugins}
    assert info["zz-dup"].status == "error"
    assert "analytic-sources" in info["zz-dup"].error and "zz-dup" in info["zz-dup"].error
    assert registry.get("source", "gaussian-m20").plugin.name == "analytic-sources"


def test_plugins_can_be_disabled_by_name(plugin_site, monkeypatch):
    plugin_site.add("rdbench-good", {"good": "toy_good"}, {"toy_good": GOOD})
    monkeypatch.setenv("RDBENCH_DISABLE_PLUGINS", "good, blahut-arimoto")
    registry = get_registry(refresh=True)
    info = {p.name: p for p in registry.plugins}
    assert info["good"].status == "disabled"
    assert "toy-extra-source" not in registry.entries("source")
    assert "blahut-arimoto" not in registry.entries("estimator")
    with pytest.raises(PluginError, match="blahut-arimoto.*disabled"):
        registry.get("estimator", "blahut-arimoto")


def test_missing_optional_dependency_makes_a_record_unavailable(plugin_site):
    code = (
        "from rdbench import EstimatorRecord, hookimpl\n@hookimpl\ndef rdbench_estimators():\n"
        "    return [EstimatorRecord('fancy-estimator', 'needs a missing package', 'toy_fancy:Make',\n"
        "                            extras=('fancy',))]\n"
    )
    plugin_site.add(
        "rdbench-fancy",
        {"fancy": "toy_fancy"},
        {"toy_fancy": code},
        extras=("fancy",),
        requires=('surely-not-installed-pkg>=1; extra == "fancy"',),
    )
    plugins = _plugins_json()
    assert plugins["fancy"]["status"] == "unavailable"
    assert "surely-not-installed-pkg" in plugins["fancy"]["error"]
    registry = get_registry(refresh=True)
    entry = registry.get("estimator", "fancy-estimator")
    assert not entry.available
    with pytest.raises(PluginError, match=r"pip install 'rdbench-fancy\[fancy\]'"):
        entry.create({})
    listing = CliRunner().invoke(main, ["list", "estimators"])
    assert "unavailable" in listing.output


def test_unknown_name_suggests_close_matches():
    with pytest.raises(PluginError, match="Did you mean .*'gaussian-m20'"):
        get_registry().get("source", "gaussian-m2O")
