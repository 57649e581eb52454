"""Faults: damaged result files, two runs on one folder, stopped runs, misbehaving
plugins, bad command lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.utils import canonicalize_name

from rdbench import leaderboard
from rdbench import registry as registry_module
from rdbench.cells import run_cell
from rdbench.cli import main
from rdbench.executors import DaskExecutor
from rdbench.registry import Registry, get_registry
from rdbench.runner import execute, plan
from rdbench.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
TOY_RUN = [
    "run",
    "--sources",
    "toy-uniform",
    "--estimators",
    "toy-ok",
    "--codecs",
    "none",
    "--executor",
    "serial",
    "--no-progress",
]

SLEEPER = """
import os, time
from pathlib import Path
from rdbench import Estimator, EstimatorRecord, RDPoint, hookimpl

class Sleeper(Estimator):
    def __init__(self, seconds: float = 60.0) -> None:
        self.seconds = seconds

    def estimate(self, source, target, seed):
        Path(os.environ["RDBENCH_TEST_MARKERS"], str(os.getpid())).touch()
        time.sleep(self.seconds)
        return [RDPoint(rate_bits=1.0, distortion=1.0, bound="estimate")]

@hookimpl
def rdbench_estimators():
    return [EstimatorRecord("toy-sleeper", "marks its process, then sleeps", "toy_sleeper:Sleeper")]
"""


def _planned(method: str, overrides: dict | None = None) -> list:
    registry = get_registry()
    return plan(
        registry, [registry.get("source", "toy-uniform")], [registry.get("estimator", method)], overrides=overrides
    )


def _one_error_line(result) -> str:
    """The output of a failed command, asserted to be one "Error: ..." line, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture
def fresh_registries(monkeypatch):
    """Rediscover plugins in this test, strict or not, and keep --strict-plugins (which sets
    RDBENCH_STRICT_PLUGINS for worker processes) from leaking out of it."""
    monkeypatch.setattr(registry_module, "_cache", {})
    monkeypatch.setenv("RDBENCH_STRICT_PLUGINS", "0")


# -- 1. the result store -----------------------------------------------------------------
def test_foreign_and_damaged_cell_files_are_reported_and_skipped(toy_plugins, tmp_path):
    store = ResultStore(tmp_path)
    good = store.write(run_cell(_planned("toy-ok")[0]))
    bad = {
        "garbage": b"\x80\xff\x00\x13garbage",
        "a-list": b"[1, 2]",
        "foreign": b'{"a": 1}',
        "copy": good.read_bytes(),
    }
    for name, data in bad.items():
        (store.cells_dir / f"{name}.json").write_bytes(data)
    with pytest.warns(UserWarning, match="skipped"):
        results = list(store.results())
    assert [r["cell_id"] for r in results] == [good.stem]
    assert sorted(path.stem for path, _ in store.problems) == sorted(bad)
    assert all(reason and "\n" not in reason for _, reason in store.problems)
    list(store.results())
    assert len(store.problems) == len(bad)  # each file reported once
    assert store.read("garbage") is None and not store.is_done("copy")

    report = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert report.exit_code == 0, report.output
    for name in bad:
        assert f"warning: skipped {store.cells_dir / name}.json: " in report.output


# -- 2. one run at a time per output folder ----------------------------------------------
def test_one_run_at_a_time_per_output_folder(toy_plugins, tmp_path):
    from rdbench.lock import OutputLock

    out = tmp_path / "out"
    with OutputLock(out, "a test"):
        busy = CliRunner().invoke(main, [*TOY_RUN, "--out", str(out)])
        line = _one_error_line(busy)
        assert f"pid {os.getpid()} on " in line and "a test" in line and "wait for it to finish" in line
        assert not (out / "cells").exists()
        assert _one_error_line(CliRunner().invoke(main, ["report", str(out)]))
    done = CliRunner().invoke(main, [*TOY_RUN, "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert CliRunner().invoke(main, ["report", str(out)]).exit_code == 0


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path):
    from rdbench.lock import LockError, OutputLock

    code = (
        "import sys, time\nfrom rdbench.lock import OutputLock\nwith OutputLock(sys.argv[1], 'the holder'):\n"
        "    print('locked', flush=True)\n    time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockError, match=f"pid {holder.pid} on .*the holder"):
            with OutputLock(tmp_path, "a test"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with OutputLock(tmp_path, "a test"):
        pass


# -- 3. stopping a run stops its workers -------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # an orphan may stay a zombie where nothing reaps it


def _still_alive(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while any(map(_alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _sleeping_run(site, tmp_path: Path) -> tuple[subprocess.Popen, Path, list[int]]:
    """A process-executor run whose two quick cells are stored and whose two other cells
    sleep in their workers; returns the run, its output folder and the workers' pids."""
    site.add("rdbench-sleeper", {"sleeper": "toy_sleeper"}, {"toy_sleeper": SLEEPER})
    out, markers = tmp_path / "out", tmp_path / "markers"
    markers.mkdir()
    args = [
        sys.executable,
        "-m",
        "rdbench.cli",
        "run",
        "--sources",
        "toy-uniform",
        "--estimators",
        "toy-ok,toy-sleeper",
        "--codecs",
        "none",
        "--seeds",
        "0,1",
        "--workers",
        "2",
        "--out",
        str(out),
        "--no-progress",
    ]
    with open(tmp_path / "stderr", "w") as stderr:  # not a pipe: orphaned workers would hold it open
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, "RDBENCH_TEST_MARKERS": str(markers)},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + 120
    while len(list(markers.iterdir())) < 2 or len(list(out.glob("cells/*.json"))) < 2:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the sleeping cells did not start: {(tmp_path / 'stderr').read_text()}")
        time.sleep(0.1)
    return proc, out, [int(p.name) for p in markers.iterdir()]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stopped_run_stops_its_workers_and_keeps_finished_cells(toy_plugins, tmp_path, signum):
    proc, out, workers = _sleeping_run(toy_plugins, tmp_path)
    try:
        proc.send_signal(signum)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the run did not stop")
        stderr = (tmp_path / "stderr").read_text()
        assert proc.returncode == 128 + signum, stderr
        assert "2 of 4 cells" in stderr
        assert _still_alive(workers, 5) == []
    finally:
        for pid in filter(_alive, workers):
            os.kill(pid, signal.SIGKILL)
    cells = [json.loads(p.read_text()) for p in out.glob("cells/*.json")]
    assert [(c["spec"]["method"], c["status"]) for c in cells] == [("toy-ok", "ok")] * 2


def test_workers_die_with_a_killed_run(toy_plugins, tmp_path):
    proc, _, workers = _sleeping_run(toy_plugins, tmp_path)
    try:
        proc.kill()
        proc.wait()
        assert _still_alive(workers, 10) == []
    finally:
        for pid in filter(_alive, workers):
            os.kill(pid, signal.SIGKILL)


# -- 4. plugins that exit --------------------------------------------------------------
@pytest.mark.parametrize(
    "code",
    [
        "import sys\nsys.exit(0)\n",
        "from rdbench import hookimpl\n@hookimpl\ndef rdbench_sources():\n    raise SystemExit(0)\n",
    ],
    ids=["at-import", "in-a-hook"],
)
def test_a_plugin_that_exits_is_a_plugin_error(plugin_site, fresh_registries, code):
    plugin_site.add("rdbench-exits", {"exits": "toy_exits"}, {"toy_exits": code})
    plugins = CliRunner().invoke(main, ["plugins", "--json"])
    assert plugins.exit_code == 0, plugins.output
    info = {p["name"]: p for p in json.loads(plugins.stdout)}
    assert info["exits"]["status"] == "error" and "SystemExit" in info["exits"]["error"]
    assert info["analytic-sources"]["status"] == "active"
    listing = CliRunner().invoke(main, ["list", "sources"])
    assert listing.exit_code == 0 and "gaussian-m20" in listing.stdout
    assert "'exits' (distribution rdbench-exits 1.0) was skipped" in listing.stderr
    strict = _one_error_line(CliRunner().invoke(main, ["--strict-plugins", "list", "sources"]))
    assert "rdbench-exits" in strict and "SystemExit" in strict


# -- 5. built-in names -------------------------------------------------------------------
def test_a_plugin_cannot_take_a_builtin_name_whatever_its_name(plugin_site):
    code = (
        "from rdbench import SourceRecord, hookimpl\n@hookimpl\ndef rdbench_sources():\n"
        "    return [SourceRecord('gaussian', 'an impostor', 'toy_evil:make')]\n"
    )
    plugin_site.add("evil", {"aaa-evil": "toy_evil"}, {"toy_evil": code})
    registry = get_registry(refresh=True)
    info = {p.name: p for p in registry.plugins}
    assert info["aaa-evil"].status == "error"
    assert "analytic-sources" in info["aaa-evil"].error and "aaa-evil" in info["aaa-evil"].error
    assert canonicalize_name(registry.get("source", "gaussian").plugin.distribution) == "rdbench"
    assert Registry.discover(strict=False).get("source", "gaussian").plugin.name == "analytic-sources"


# -- 6. one-line errors ------------------------------------------------------------------
def test_strict_plugins_listing_with_a_broken_plugin_is_one_line(plugin_site, fresh_registries):
    plugin_site.add("rdbench-broken", {"broken": "toy_broken"}, {"toy_broken": "raise RuntimeError('broken')\n"})
    line = _one_error_line(CliRunner().invoke(main, ["--strict-plugins", "plugins"]))
    assert "rdbench-broken" in line and "broken" in line


def test_a_leaderboard_that_is_not_parquet_is_one_line(tmp_path):
    (tmp_path / "leaderboard.parquet").write_bytes(b"\x80\xffnot parquet at all")
    line = _one_error_line(CliRunner().invoke(main, ["leaderboard", str(tmp_path)]))
    assert str(tmp_path / "leaderboard.parquet") in line and f"rdbench report {tmp_path}" in line


# -- 7. plan-time checks of `rdbench run` -----------------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "gpu"], "--device must be cpu, cuda, cuda:N or mps"),
        (["--device", "cuda:x"], "--device must be cpu, cuda, cuda:N or mps"),
        (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler needs --executor dask"),
    ],
)
def test_bad_run_options_fail_before_any_cell_runs(toy_plugins, tmp_path, extra, message):
    out = tmp_path / "out"
    line = _one_error_line(CliRunner().invoke(main, [*TOY_RUN, "--out", str(out), *extra]))
    assert message in line
    assert not (out / "cells").exists()


def test_an_output_folder_that_cannot_be_written_fails_before_any_cell_runs(toy_plugins, tmp_path):
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "sub"
    line = _one_error_line(CliRunner().invoke(main, [*TOY_RUN, "--out", str(out)]))
    assert f"cannot write to --out {out}" in line


def test_cuda_without_a_cuda_device_fails_before_any_cell_runs(toy_plugins, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    out = tmp_path / "out"
    line = _one_error_line(CliRunner().invoke(main, [*TOY_RUN, "--out", str(out), "--device", "cuda"]))
    assert "no CUDA device" in line and "--device cpu" in line
    assert not (out / "cells").exists()


# -- 8. Dask ---------------------------------------------------------------------------
def test_dask_runs_cells_longer_than_its_polling_interval(toy_plugins, tmp_path):
    pytest.importorskip("distributed")
    specs = _planned("toy-slow", {"toy-slow": {"seconds": 2.5}})
    summary = execute(specs, ResultStore(tmp_path), DaskExecutor(workers=1), timeout=60, progress=False)
    assert summary.ok and summary.computed == 1


@pytest.mark.parametrize("setting, kept", [("fail_at=1", [0, 2]), ("raise_at=2", [0, 1])])
def test_a_failing_target_of_a_curve_cell_keeps_the_others(toy_plugins, tmp_path, setting, kept):
    """A curve codec whose encoder fails at one target, or whose fit_curve raises before the
    last, keeps the targets it measured; the failed ones are error rows and the run fails."""
    out = tmp_path / "out"
    args = [
        "run",
        "--sources",
        "toy-uniform",
        "--estimators",
        "none",
        "--codecs",
        "toy-curve-codec",
        "--targets",
        "D=0.5,D=0.2,D=0.1",
        "--set",
        f"toy-curve-codec.{setting}",
        "--out",
        str(out),
        "--executor",
        "serial",
        "--no-progress",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    table = leaderboard.read(out)
    targets = ["D=0.5", "D=0.2", "D=0.1"]
    ok = table[table["status"] != "error"]
    assert sorted(ok["target"]) == sorted(targets[i] for i in kept)
    failed = table[table["status"] == "error"]
    assert list(failed["target"]) == [t for i, t in enumerate(targets) if i not in kept]
    assert failed["error"].str.contains("broke" if "fail" in setting else "cannot fit target 2").all()
    # a partial cell is not done: the next run computes it again
    again = CliRunner().invoke(main, args)
    assert "0 already done, 1 computed" in again.output
