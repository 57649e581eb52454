"""Cell identity follows what can change the numbers; plans are checked before any cell runs;
curve cells; the leaderboard holds the plan's cells only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from rdbench import leaderboard, spec
from rdbench.cells import run_cell
from rdbench.cli import main
from rdbench.records import EstimatorRecord
from rdbench.registry import get_registry
from rdbench.runner import PlanError, plan
from rdbench.store import ResultStore

TOY = ["--estimators", "toy-ok", "--codecs", "none", "--no-progress"]


def _run(out: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["run", "--out", str(out), *args])
    assert result.exit_code == code, result.output
    return result.output


def _plan(source: str, method: str, kind: str = "estimator", **kw):
    registry = get_registry()
    return plan(registry, [registry.get("source", source)], [registry.get(kind, method)], **kw)


def test_overwriting_a_file_a_setting_names_makes_a_fresh_cell(tmp_path):
    pytest.importorskip("torch")
    generator = tmp_path / "generator.pt"
    generator.write_bytes(b"first model")
    overrides = {"pfr-nerd": {"generator": str(generator), "generator_rate_bits": 2.0}}
    (before,) = _plan("gaussian", "pfr-nerd", "codec", targets=["R=1"], overrides=overrides)
    assert before.files == {"method.generator": spec.file_digest(generator)}
    generator.write_bytes(b"second model")
    (after,) = _plan("gaussian", "pfr-nerd", "codec", targets=["R=1"], overrides=overrides)
    assert after.cell_id != before.cell_id
    generator.unlink()
    with pytest.raises(PlanError, match="no such file"):
        _plan("gaussian", "pfr-nerd", "codec", targets=["R=1"], overrides=overrides)


def test_editing_a_plugins_code_makes_fresh_cells(toy_plugins, tmp_path):
    out = tmp_path / "out"
    _run(out, "--sources", "toy-uniform", *TOY)
    assert "1 already done" in _run(out, "--sources", "toy-uniform", *TOY)
    module = toy_plugins.root / "toy_plugin.py"
    module.write_text(module.read_text() + "\n# an edit that could change the numbers\n")
    spec.code_fingerprint.cache_clear()  # a new process computes it anew
    try:
        assert "0 already done, 1 computed" in _run(out, "--sources", "toy-uniform", *TOY)
    finally:
        spec.code_fingerprint.cache_clear()


def test_budgets_resolved_at_plan_time_are_stored_in_the_cell():
    pytest.importorskip("torch")
    (cell,) = _plan("gaussian", "nerd", profile="default")
    assert cell.method_settings["max_steps"] == 4000 and cell.method_settings["m_train_max"] == 16384
    (ntc,) = _plan("gaussian", "ntc", "codec", targets=["R=1"])
    assert ntc.method_settings["steps"] == 2500 and ntc.method_settings["warm_fraction"] == 0.4
    # vectors and images take their own kind's budgets
    keys = {
        "sandwich-upper": ("steps",),
        "sandwich-lower": ("train_starts", "train_iterations"),
        "wgd": ("steps", "warm_steps"),
    }

    def budgets(source: str, target: str) -> dict[str, tuple[int, ...]]:
        cells = {m: _plan(source, m, targets=[target])[0] for m in keys}
        return {m: tuple(cells[m].method_settings[k] for k in keys[m]) for m in keys}

    assert budgets("gaussian", "R=1") == {"sandwich-upper": (2500,), "sandwich-lower": (8, 10), "wgd": (200, 100)}
    pytest.importorskip("sklearn")
    assert budgets("digits", "D/Dmax=0.5") == {"sandwich-upper": (5000,), "sandwich-lower": (16, 20), "wgd": (400, 200)}


def test_targets_are_stored_losslessly(toy_plugins):
    cells = _plan("toy-uniform", "toy-ok", targets=["D=0.12345678", "D=0.12345679"])
    assert [c.targets for c in cells] == [("D=0.12345678",), ("D=0.12345679",)]
    assert cells[0].cell_id != cells[1].cell_id
    point = run_cell(cells[1])["points"][0]
    assert point["target"] == "D=0.12345679" and point["target_distortion"] == 0.12345679


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", str(2**63)], "seeds must be whole numbers from 0 to 2^63 - 1"),
        (["--seeds", "-1"], "seeds must be whole numbers"),
        (["--set", "toy-slow.secnds=1"], "toy-slow has no setting 'secnds'; did you mean 'seconds'?"),
        (["--set", "toy-slow.seconds=abc"], 'toy-slow.seconds="abc": expected a number'),
    ],
)
def test_plans_are_checked_before_any_cell_runs(toy_plugins, tmp_path, args, message):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["run", "--sources", "toy-uniform", "--estimators", "toy-slow", "--codecs", "none", "--out", str(out), *args],
    )
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (out / "cells").exists()


def test_a_plugin_that_calls_sys_exit_is_a_failed_cell(toy_plugins, tmp_path):
    for executor in ("serial", "process"):
        out = tmp_path / executor
        output = _run(
            out,
            "--sources",
            "toy-uniform",
            "--estimators",
            "toy-exit,toy-ok",
            "--codecs",
            "none",
            "--executor",
            executor,
            "--no-progress",
            code=1,
        )
        assert "1 failed" in output and "SystemExit" in output
        table = leaderboard.read(out)
        assert sorted(table["status"]) == ["error", "ok"]


def test_profile_tables_may_only_override_known_settings():
    with pytest.raises(ValueError, match="profile 'smoke' sets steps, which defaults lacks"):
        EstimatorRecord("x", "x", "m:f", defaults={"lr": 1.0}, profiles={"smoke": {"steps": 3}}).validate()
    with pytest.raises(ValueError, match="defaults must be JSON values"):
        EstimatorRecord("x", "x", "m:f", defaults={"f": float("nan")}).validate()


def test_a_curve_method_gets_one_cell_with_every_target(toy_plugins, tmp_path):
    (cell,) = _plan("toy-uniform3", "toy-curve")
    assert cell.targets == ("D/Dmax=0.25", "D/Dmax=0.5", "D/Dmax=0.75")
    assert len(_plan("toy-uniform3", "toy-ok")) == 3  # per-target cells for the others
    out = tmp_path / "out"
    _run(out, "--sources", "toy-uniform3", "--estimators", "toy-curve", "--codecs", "none", "--no-progress")
    table = leaderboard.read(out)
    assert list(table["target"]) == ["D/Dmax=0.25", "D/Dmax=0.5", "D/Dmax=0.75"]
    assert table["cell_id"].nunique() == 1
    assert [json.loads(d)["targets_in_call"] for d in table["details"]] == [3, 3, 3]
    assert (table["distortion"] == table["target_distortion"]).all()


def test_the_leaderboard_holds_the_plans_cells_only(toy_plugins, tmp_path):
    out = tmp_path / "out"
    base = ["--sources", "toy-uniform", "--estimators", "toy-slow", "--codecs", "none", "--no-progress"]
    _run(out, *base, "--set", "toy-slow.seconds=0")
    _run(out, *base, "--set", "toy-slow.seconds=0.01")
    table = leaderboard.read(out)
    assert len(table) == 1 and json.loads(table["method_settings"][0])["seconds"] == 0.01
    summary = (out / "summary.md").read_text()
    assert "1 other stored cell(s) are not part of this plan" in summary
    result = CliRunner().invoke(main, ["report", str(out), "--all"])
    assert result.exit_code == 0, result.output
    assert len(leaderboard.read(out)) == 2


def test_result_files_are_readable_like_the_rest_of_the_folder(toy_plugins, tmp_path):
    out = tmp_path / "out"
    _run(out, "--sources", "toy-uniform", *TOY)
    (cell,) = (out / "cells").glob("*.json")
    umask = os.umask(0)
    os.umask(umask)
    for path in (cell, out / "leaderboard.parquet", out / "summary.md", out / "plan.json"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_cells_of_an_older_format_are_recomputed_not_mixed_in(toy_plugins, tmp_path):
    out = tmp_path / "out"
    _run(out, "--sources", "toy-uniform", *TOY)
    store = ResultStore(out)
    (path,) = store.cells_dir.glob("*.json")
    old = json.loads(path.read_text())
    old["cell_format"] = spec.CELL_FORMAT - 1
    path.write_text(json.dumps(old))
    assert "0 already done, 1 computed" in _run(out, "--sources", "toy-uniform", *TOY)
    assert json.loads(path.read_text())["cell_format"] == spec.CELL_FORMAT


def test_report_check_says_whether_results_are_current(toy_plugins, tmp_path):
    out = tmp_path / "out"
    _run(out, "--sources", "toy-uniform", *TOY)
    current = CliRunner().invoke(main, ["report", str(out), "--check"])
    assert current.exit_code == 0 and current.output.startswith("current: all 1 cells"), current.output
    module = toy_plugins.root / "toy_plugin.py"
    module.write_text(module.read_text() + "\n# changed\n")
    spec.code_fingerprint.cache_clear()
    try:
        stale = CliRunner().invoke(main, ["report", str(out), "--check"])
    finally:
        spec.code_fingerprint.cache_clear()
    assert stale.exit_code == 1 and stale.output.startswith("stale: 1 of 1 cells"), stale.output
    assert "rdbench run --sources toy-uniform --estimators toy-ok --codecs none" in stale.output


def test_a_slow_plugin_import_is_not_charged_to_the_cell(plugin_site, tmp_path):
    plugin_site.add(
        "rdbench-sleepy",
        {"sleepy": "toy_sleepy"},
        {
            "toy_sleepy": (
                "import time\ntime.sleep(6.0)\n"
                "from rdbench import EstimatorRecord, hookimpl\n"
                "@hookimpl\ndef rdbench_estimators():\n"
                "    return [EstimatorRecord('sleepy', 'x',\n"
                "                            'rdbench_plugins.blahut_arimoto.estimator:BlahutArimoto')]\n"
            )
        },
    )
    get_registry(refresh=True)
    out = tmp_path / "out"
    _run(
        out,
        "--sources",
        "bernoulli",
        "--estimators",
        "sleepy",
        "--codecs",
        "none",
        "--targets",
        "R=0.3",
        "--profile",
        "smoke",
        "--no-progress",
    )
    walls = pd.read_parquet(out / "leaderboard.parquet")["wall_seconds"]
    # the 6 s import happens in every worker, outside the cell's clock (the cell's own imports,
    # slow on a fresh environment's first run, are inside it)
    assert (walls < 5).all(), walls


def test_estimator_cells_run_before_codec_cells(toy_plugins, tmp_path):
    """So that a codec built on an estimator's output finds the run's estimator cells stored."""
    from rdbench.executors import SerialExecutor
    from rdbench.runner import execute

    registry = get_registry()
    specs = plan(
        registry,
        [registry.get("source", "toy-uniform"), registry.get("source", "toy-uniform3")],
        [registry.get("codec", "toy-quantizer"), registry.get("estimator", "toy-ok")],
    )
    assert specs[0].method_kind == "codec"
    order = []

    class Recording(SerialExecutor):
        def run(self, todo, timeout, out=None, after=None):
            order.extend(s.method_kind for s in todo)
            yield from super().run(todo, timeout, out, after)

    execute(specs, ResultStore(tmp_path), Recording(), timeout=None, progress=False)
    assert order == ["estimator"] * 4 + ["codec"] * 4
