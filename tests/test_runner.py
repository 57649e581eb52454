"""The runner: cells, the store, resuming, failures, executors, the leaderboard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rdbench import Source, SquaredError, leaderboard
from rdbench.cells import run_cell
from rdbench.cli import main
from rdbench.evaluation import evaluate_codec
from rdbench.executors import DaskExecutor, ProcessExecutor, SerialExecutor
from rdbench.registry import get_registry
from rdbench.runner import execute, plan
from rdbench.spec import CellSpec
from rdbench.store import ResultStore
from rdbench.targets import Target

ROOT = Path(__file__).resolve().parents[1]


def _spec(**kw) -> CellSpec:
    base = dict(
        source="toy-uniform",
        source_settings={},
        source_version="1.0",
        method="toy-ok",
        method_kind="estimator",
        method_settings={},
        method_version="1.0",
        targets=("D/Dmax=0.5",),
        seed=0,
        n_test=100,
    )
    base.update(kw)
    return CellSpec(**base)


def _planned(method: str, kind: str = "estimator", source: str = "toy-uniform") -> CellSpec:
    """The cell the runner plans for ``method`` on ``source`` (record defaults applied)."""
    registry = get_registry()
    return plan(registry, [registry.get("source", source)], [registry.get(kind, method)])[0]


def test_cell_id_is_stable_and_depends_on_what_matters():
    a = _spec()
    assert a.cell_id == _spec().cell_id
    assert a.cell_id == _spec(profile="smoke").cell_id  # the profile acts through the settings
    assert a.cell_id == _spec(n_test=5).cell_id  # estimators are not evaluated on the test split
    for change in (
        {"seed": 1},
        {"method_settings": {"mode": "x"}},
        {"method_version": "2.0"},
        {"source_version": "1.1"},
        {"targets": ("D/Dmax=0.4",)},
        {"targets": ("D/Dmax=0.5", "D/Dmax=0.4")},
        {"rdbench_code": "a"},
        {"source_code": "b"},
        {"method_code": "c"},
        {"files": {"method.f": "0"}},
    ):
        assert _spec(**change).cell_id != a.cell_id, change
    assert (
        _spec(method_kind="codec", method="toy-quantizer").cell_id
        != _spec(method_kind="codec", method="toy-quantizer", n_test=5).cell_id
    )


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("toy-raise", "boom from the toy estimator"),
        ("toy-nan", "rate_bits must be a finite number"),
        ("toy-negative", "rate_bits must be >= 0"),
    ],
)
def test_failing_cells_are_errors_not_exceptions(toy_plugins, method, message):
    result = run_cell(_planned(method))
    assert result["status"] == "error"
    assert message in result["error"]
    assert result["points"] == []


def test_codec_cells_use_the_real_bitstream(toy_plugins):
    stream = run_cell(_planned("toy-quantizer", "codec"))
    assert stream["status"] == "ok", stream.get("error")
    point = stream["points"][0]
    # one byte per component (2 components) plus a 1-byte header for the whole stream
    n_test = stream["spec"]["n_test"]
    assert point["rate_bits"] == pytest.approx(2 * 8 + 8 / n_test)
    assert point["bound"] == "operational"
    # uniform quantizer with step 0.5 on U[0,1]: error uniform on a cell, 2 components x step^2/12
    assert point["distortion"] == pytest.approx(2 * 0.5**2 / 12, rel=0.15)
    one_shot = run_cell(_planned("toy-quantizer-oneshot", "codec"))
    assert one_shot["coding"] == "one-shot"
    assert one_shot["points"][0]["rate_bits"] == pytest.approx(3 * 8)  # header byte per message


def test_a_finite_test_split_is_coded_each_realization_once():
    """Codecs are evaluated on at most the test split's size: asked for 100 realizations of a
    30-point split, the codec codes each point exactly once."""
    from toy_plugin import FixedRateQuantizer

    class ThirtyPoints(Source):
        shape, distortion = (1,), SquaredError()

        def split_size(self, split):
            return 30

        def sample(self, n, seed, split="train"):
            points = np.arange(30.0)[:, None] / 10 - 1.5
            order = np.concatenate([self.rng(seed, split).permutation(30) for _ in range(-(-n // 30))])
            return points[order[:n]]

    class Recording(FixedRateQuantizer):
        coding = "one-shot"

        def encode(self, x):
            seen.append(float(x[0]))
            return super().encode(x)

    seen: list[float] = []
    point = evaluate_codec(Recording(), ThirtyPoints(), Target.parse("D=0.1"), seed=0, n_test=100)
    assert point.details["n_test"] == 30
    assert sorted(seen) == pytest.approx(list(np.arange(30.0) / 10 - 1.5))


def test_codec_points_carry_the_standard_errors_of_their_test_means():
    """distortion_stderr (and, for one message per realization, rate_stderr_bits) is the
    standard error of the mean over the coded test realizations, computed here apart."""
    from toy_plugin import FixedRateQuantizer

    class OneShot(FixedRateQuantizer):
        coding = "one-shot"

        def encode(self, x):  # a message whose length varies with the realization
            return super().encode(x) + bytes(int(abs(x[0]) * 4))

        def decode(self, message):
            return super().decode(message[:2])  # the header and the one component

    source = get_registry().get("source", "gaussian").create({"variances": [1.0]})
    codec = OneShot()
    point = evaluate_codec(codec, source, Target.parse("D=0.1").resolve(source), seed=0, n_test=400)
    x = source.sample(400, 0, "test")
    d = source.distortion(x, np.stack([codec.decode(codec.encode(xi)) for xi in x]))
    lengths = np.array([8 * len(codec.encode(xi)) for xi in x])
    assert point.distortion == pytest.approx(d.mean(), rel=1e-12)
    assert point.details["distortion_stderr"] == pytest.approx(d.std(ddof=1) / 20, rel=1e-12)
    assert point.rate_bits == pytest.approx(lengths.mean(), rel=1e-12)
    assert point.details["rate_stderr_bits"] == pytest.approx(lengths.std(ddof=1) / 20, rel=1e-12)


@pytest.mark.parametrize(
    "miss, stderr, status",
    [
        (0.05, None, "off_target"),  # a codec 5 % off with no error bar: beyond its 3 %
        (0.05, 0.015, "ok"),  # 5 % < 3 % + 2 x 1.5 %: the test set cannot tell it from noise
        (0.07, 0.015, "off_target"),  # 7 % > 6 %
        (-0.07, 0.015, "off_target"),  # either side
    ],
)
def test_a_point_is_off_target_only_beyond_its_tolerance_and_two_standard_errors(miss, stderr, status):
    row = {"method_kind": "codec", "converged": None, "target_distortion": 2.0, "distortion": 2.0 * (1 + miss)}
    assert leaderboard.point_status(row, None if stderr is None else 2.0 * stderr) == status


def test_a_cell_reads_back_the_runs_stored_estimator_cell(toy_plugins, tmp_path):
    """rdbench.cells.estimate inside a cell returns the run's stored cell of that estimator with
    the settings it asks for (same source, target, seed), and computes when the run has none
    with those settings, or outside a run. Two stored toy-ok cells whose offsets (0 and 10)
    change their numbers, each edited to a number only its file holds: a reader that ignores
    its settings, or recomputes instead of reading, gets the wrong one."""
    registry = get_registry()
    uniform = [registry.get("source", "toy-uniform")]

    def planned(name: str, settings: dict) -> CellSpec:
        (spec,) = plan(registry, uniform, [registry.get("estimator", name)], overrides={name: settings})
        return spec

    store, stored = ResultStore(tmp_path), {}
    for offset, only_in_file in ((0.0, 0.123456), (10.0, 10.654321)):
        spec = planned("toy-ok", {"offset": offset})
        result = run_cell(spec)
        assert result["status"] == "ok", result.get("error")
        stored[offset] = (spec.cell_id, result["points"][0]["rate_bits"], only_in_file)
        result["points"][0]["rate_bits"] = only_in_file
        store.write(result)
    (id_0, computed_0, file_0), (id_10, computed_10, file_10) = stored[0.0], stored[10.0]
    assert id_0 != id_10 and computed_10 == pytest.approx(computed_0 + 10)  # the settings change the numbers

    def read(settings: dict, out: Path | None = tmp_path) -> dict:
        result = run_cell(planned("toy-derived", {"settings": settings}), out)
        assert result["status"] == "ok", result.get("error")
        return result["points"][0]

    for settings, cell_id, number in (
        ({"offset": 10.0}, id_10, file_10),
        ({"offset": 0.0}, id_0, file_0),
        ({}, id_0, file_0),  # the record's defaults: offset 0
    ):
        point = read(settings)
        assert point["details"]["reused_cell"] == cell_id and point["rate_bits"] == number, settings
    fresh = read({"offset": 5.0})  # no stored cell has these settings: computed here
    assert "reused_cell" not in fresh["details"] and fresh["rate_bits"] == pytest.approx(computed_0 + 5)
    outside = read({"offset": 10.0}, None)  # outside a run
    assert "reused_cell" not in outside["details"] and outside["rate_bits"] == pytest.approx(computed_10)


@pytest.mark.parametrize("executor", ["process", "serial"])
def test_a_cell_that_reads_another_starts_after_it(toy_plugins, tmp_path, executor):
    """toy-derived-slow ``reads`` toy-slow: with two workers it would otherwise start beside the
    slow cell, find nothing stored and compute toy-slow itself."""
    registry = get_registry()
    specs = plan(
        registry,
        [registry.get("source", "toy-uniform")],
        [registry.get("estimator", "toy-derived-slow"), registry.get("estimator", "toy-slow")],
        overrides={"toy-slow": {"seconds": 1.5}},
    )
    store = ResultStore(tmp_path)
    ex = ProcessExecutor(2) if executor == "process" else SerialExecutor()
    assert execute(specs, store, ex, timeout=None, progress=False).ok
    derived, ok = (store.read(s.cell_id) for s in specs)
    assert derived["points"][0]["details"]["reused_cell"] == ok["cell_id"]
    assert derived["started_at"] >= ok["finished_at"]


class _Recording(SerialExecutor):
    def run(self, specs, timeout, out=None, after=None):
        self.order = [(s.method_kind, s.size) for s in specs]
        yield from super().run(specs, timeout, out, after)


def test_cells_of_larger_realizations_start_first_estimators_before_codecs(toy_plugins, tmp_path):
    """The longest cells start first (a long one started last would hold the run's end);
    ``size`` (elements per realization) schedules but is not part of a cell's identity."""
    registry = get_registry()
    sources = [registry.get("source", name) for name in ("toy-uniform", "gaussian-m20")]
    specs = plan(registry, sources, [registry.get("codec", "toy-quantizer"), registry.get("estimator", "toy-ok")])
    assert {s.size for s in specs} == {2, 20}
    executor = _Recording()
    assert execute(specs, ResultStore(tmp_path), executor, timeout=None, progress=False).ok
    assert executor.order == sorted(executor.order, key=lambda kind_size: (kind_size[0] != "estimator", -kind_size[1]))
    assert executor.order[0] == ("estimator", 20) and executor.order[-1] == ("codec", 2)
    assert _spec(size=7).cell_id == _spec().cell_id


def test_run_resume_and_rerun_compute_nothing_twice(toy_plugins, tmp_path):
    out = tmp_path / "out"
    args = [
        "run",
        "--sources",
        "toy-uniform,bernoulli",
        "--estimators",
        "toy-ok",
        "--codecs",
        "toy-quantizer",
        "--profile",
        "smoke",
        "--seeds",
        "0,1",
        "--out",
        str(out),
        "--no-progress",
    ]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    table = pd.read_parquet(out / "leaderboard.parquet")
    assert list(table.columns) == leaderboard.COLUMNS
    # toy-ok lands on its target; the fixed-rate quantizer ignores it and is flagged, not silently ok
    assert set(table.loc[table["method"] == "toy-ok", "status"]) == {"ok"}
    assert set(table.loc[table["method"] == "toy-quantizer", "status"]) == {"off_target"}
    # toy-uniform has 1 target, bernoulli 2 in smoke; 2 methods, 2 seeds
    assert len(table) == (1 + 2) * 2 * 2
    assert (out / "plots" / "toy-uniform.png").stat().st_size > 1000
    assert (out / "plots" / "bernoulli.png").stat().st_size > 1000
    bern = table[(table["source"] == "bernoulli") & (table["method"] == "toy-quantizer")]
    assert bern["rate_true_bits"].notna().all()
    assert (bern["rate_gap_bits"] == bern["rate_bits"] - bern["rate_true_bits"]).all()
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}

    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "12 cells planned: 12 already done, 0 computed, 0 failed" in again.output
    assert {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")} == mtimes


def test_a_failing_cell_does_not_stop_the_run(toy_plugins, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--sources",
            "toy-uniform",
            "--estimators",
            "toy-raise,toy-ok,toy-nan",
            "--codecs",
            "none",
            "--out",
            str(out),
            "--executor",
            "serial",
            "--no-progress",
        ],
    )
    assert result.exit_code == 1
    assert "2 failed" in result.output and "boom from the toy estimator" in result.output
    table = leaderboard.read(out)
    assert sorted(table["status"]) == ["error", "error", "ok"]
    assert table.loc[table["method"] == "toy-ok", "rate_bits"].notna().all()
    ranking = CliRunner().invoke(main, ["leaderboard", str(out)])
    assert (
        ranking.exit_code == 0 and "toy-uniform" in ranking.output and "2 failed cell(s) or target(s)" in ranking.output
    )


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_timeouts_become_error_cells(toy_plugins, tmp_path, executor):
    store = ResultStore(tmp_path)
    registry = get_registry()
    specs = plan(
        registry,
        [registry.get("source", "toy-uniform")],
        [registry.get("estimator", "toy-slow"), registry.get("estimator", "toy-ok")],
    )
    ex = SerialExecutor() if executor == "serial" else ProcessExecutor(2)
    t0 = time.monotonic()
    summary = execute(specs, store, ex, timeout=1.0, progress=False)
    assert time.monotonic() - t0 < 20
    assert summary.computed == 2 and len(summary.failed) == 1
    assert "timed out after 1 s" in summary.failed[0]["error"]


def test_same_seed_same_numbers_across_executors(toy_plugins, tmp_path):
    registry = get_registry()
    specs = plan(
        registry,
        [registry.get("source", "toy-uniform"), registry.get("source", "gaussian-rcc")],
        [registry.get("estimator", "toy-ok"), registry.get("codec", "toy-quantizer")],
        profile="smoke",
        seeds=(0, 3),
    )
    tables = []
    for name, ex in (("serial", SerialExecutor()), ("process", ProcessExecutor(2))):
        store = ResultStore(tmp_path / name)
        assert execute(specs, store, ex, timeout=None, progress=False).ok
        tables.append(leaderboard.build(store)[["cell_id", "rate_bits", "distortion"]])
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_a_reused_worker_gives_each_cell_its_own_numbers_and_memory(toy_plugins):
    """Workers run cell after cell: a cell's numbers must not depend on what ran before it
    in the process, and its peak memory is its own."""
    pytest.importorskip("torch")
    registry = get_registry()
    ntc = registry.get("codec", "ntc")
    tiny = {"ntc": {"steps": 40, "finetune_steps": 5, "density_steps": 5, "n_train": 256, "n_val": 128}}
    specs = plan(registry, [registry.get("source", "gaussian")], [ntc], profile="smoke", seeds=(0, 1), overrides=tiny)
    hog = plan(registry, [registry.get("source", "toy-uniform")], [registry.get("estimator", "toy-hog")])
    small = plan(registry, [registry.get("source", "toy-uniform")], [registry.get("estimator", "toy-ok")])
    one_after_another = list(ProcessExecutor(1).run([*hog, *small, *specs], timeout=None))
    alone = list(ProcessExecutor(1).run(specs[1:], timeout=None))
    assert len({r["provenance"]["pid"] for r in one_after_another}) == 1  # one worker ran them all
    by_id = {r["cell_id"]: r for r in one_after_another}
    assert [p["rate_bits"] for p in by_id[specs[1].cell_id]["points"]] == [p["rate_bits"] for p in alone[0]["points"]]
    assert by_id[hog[0].cell_id]["peak_memory_mb"] > 400
    assert by_id[small[0].cell_id]["peak_memory_mb"] < by_id[hog[0].cell_id]["peak_memory_mb"] - 300


def test_dask_local_cluster(toy_plugins, tmp_path):
    pytest.importorskip("distributed")
    registry = get_registry()
    specs = plan(
        registry,
        [registry.get("source", "toy-uniform")],
        [
            registry.get("estimator", "toy-ok"),
            registry.get("estimator", "toy-raise"),
            registry.get("codec", "toy-quantizer"),
        ],
        seeds=(0, 1),
    )
    store = ResultStore(tmp_path)
    summary = execute(specs, store, DaskExecutor(workers=1), timeout=60, progress=False)
    assert summary.computed == 6
    assert len(summary.failed) == 2 and all("boom" in f["error"] for f in summary.failed)
    serial = ResultStore(tmp_path / "serial")
    execute(specs, serial, SerialExecutor(), timeout=None, progress=False)
    cols = ["cell_id", "status", "rate_bits", "distortion"]
    pd.testing.assert_frame_equal(leaderboard.build(store)[cols], leaderboard.build(serial)[cols])


def test_kill_9_loses_no_finished_cell(toy_plugins, tmp_path):
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "rdbench.cli",
        "run",
        "--sources",
        "toy-uniform",
        "--estimators",
        "toy-slow",
        "--codecs",
        "none",
        "--seeds",
        ",".join(map(str, range(8))),
        "--set",
        "toy-slow.seconds=0.4",
        "--executor",
        "serial",
        "--out",
        str(out),
        "--no-progress",
    ]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cells = out / "cells"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(cells.glob("*.json"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.read_text() for p in cells.glob("*.json")}
    assert 3 <= len(finished) < 8
    for text in finished.values():
        assert json.loads(text)["status"] == "ok"  # whole files only
    rerun = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} already done, {8 - len(finished)} computed" in rerun.stdout
    for name, text in finished.items():
        assert (cells / name).read_text() == text


def test_bad_command_lines_get_clear_errors(toy_plugins, tmp_path):
    cases = [
        (["--sources", "gaussian-m2O"], "Did you mean"),
        (["--targets", "R=abc"], "is not a number"),
        (["--targets", "Q=1"], "cannot read target"),
        (["--sources", "toy-uniform", "--targets", "R=1"], "no exact R(D)"),
        (["--set", "nosuch.key=1"], "not a selected source or method"),
        (["--set", "broken"], "NAME.KEY=VALUE"),
        (["--seeds", "a"], "comma-separated integers"),
    ]
    for extra, message in cases:
        result = CliRunner().invoke(
            main, ["run", "--estimators", "toy-ok", "--codecs", "none", "--out", str(tmp_path), *extra]
        )
        assert result.exit_code != 0, extra
        assert message in result.output, (extra, result.output)


def test_schema_is_documented_in_the_readme():
    """The README's schema table lists exactly the columns, in order, with their types and meanings."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Results schema") : readme.index("Beside it:")]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| `")]
    documented = [(name.strip(" `"), kind, meaning.strip().replace("&#124;", "|")) for name, kind, meaning in rows]
    expected = [(name, str(t).replace("float64", "double"), meaning) for name, t, meaning in leaderboard.SCHEMA]
    assert documented == expected


def test_artifacts_are_stored_beside_the_cell(tmp_path):
    from rdbench.interfaces import RDPoint

    store = ResultStore(tmp_path)
    spec = _spec()
    result = {
        "cell_id": spec.cell_id,
        "spec": {},
        "status": "ok",
        "points": [],
        "artifacts": {"0-model.bin": b"\x00\x01"},
    }
    store.write(result)
    assert store.artifact_path(spec.cell_id, "0-model.bin").read_bytes() == b"\x00\x01"
    assert "artifacts" not in json.loads(store.path(spec.cell_id).read_text())
    with pytest.raises(ValueError, match="plain file name"):
        RDPoint(1.0, 1.0, "estimate", artifacts={"../x": b""}).validate()


def test_pairs_whose_measures_or_features_do_not_meet_are_not_planned():
    from rdbench.records import CodecRecord
    from rdbench.registry import Entry

    registry = get_registry()
    sources = [
        registry.get("source", "gaussian-rcc"),
        registry.get("source", "bernoulli"),
        registry.get("source", "laplace"),
    ]
    any_measure = registry.get("estimator", "blahut-arimoto")
    plugin = any_measure.plugin
    only_mse = Entry("codec", CodecRecord("mse-only", "x", "m:f", distortions=("squared_error",)), plugin)
    gaussian_only = Entry("codec", CodecRecord("needs-gaussian", "x", "m:f", requires=("gaussian",)), plugin)
    skipped: list = []
    specs = plan(registry, sources, [any_measure, only_mse, gaussian_only], profile="smoke", skipped=skipped)
    pairs = {(s.source, s.method) for s in specs}
    assert pairs == {
        ("gaussian-rcc", "blahut-arimoto"),
        ("bernoulli", "blahut-arimoto"),
        ("laplace", "blahut-arimoto"),
        ("gaussian-rcc", "mse-only"),
        ("gaussian-rcc", "needs-gaussian"),
    }
    assert [(s, m) for s, m, _ in skipped] == [
        ("bernoulli", "mse-only"),
        ("bernoulli", "needs-gaussian"),
        ("laplace", "mse-only"),
        ("laplace", "needs-gaussian"),
    ]
    assert skipped[0][2] == "hamming distortion"
    assert skipped[1][2] == "no gaussian feature"
    with pytest.raises(Exception, match="distortion measures or required features"):
        plan(registry, sources[1:2], [only_mse])


@pytest.mark.parametrize(
    "bound, miss, status",
    [
        ("upper", -0.10, "ok"),  # an upper bound on R at a smaller D bounds R at the target too
        ("upper", 0.05, "off_target"),  # above: it bounds R(D) only at a larger distortion
        ("lower", 0.10, "ok"),  # a lower bound on R at a larger D bounds R at the target too
        ("lower", -0.05, "off_target"),
        ("estimate", -0.10, "off_target"),  # an estimate is off target on either side
    ],
)
def test_a_bound_is_off_target_only_on_the_side_where_it_says_nothing_at_the_target(bound, miss, status):
    row = {"method_kind": "estimator", "bound": bound, "target_distortion": 2.0, "distortion": 2.0 * (1 + miss)}
    assert leaderboard.point_status(row) == status
