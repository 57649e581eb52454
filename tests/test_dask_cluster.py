"""A real Dask cluster: ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1.

The run uses cells longer than the executor's polling interval, loses a worker midway, and
must still finish every cell exactly once with a serial run's numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("distributed")

DASK = shutil.which("dask") or str(Path(sys.executable).with_name("dask"))
SECONDS = 1.5  # each cell sleeps this long, longer than the executor's 1 s polling interval
SEEDS = "0,1,2,3,4,5"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _wait_for_workers(address: str, n: int, deadline: float) -> None:
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))


def _rates(out: Path) -> dict[tuple[str, int], float]:
    table = pd.read_parquet(out / "leaderboard.parquet")
    assert table["cell_id"].is_unique, "a cell was recorded twice"
    return {(row.target, int(row.seed)): row.rate_bits for row in table.itertuples()}


def _run_args(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rdbench",
        "run",
        "--sources",
        "toy-uniform",
        "--estimators",
        "toy-slow",
        "--codecs",
        "none",
        "--targets",
        "D=0.5",
        "--seeds",
        SEEDS,
        "--set",
        f"toy-slow.seconds={SECONDS}",
        "--profile",
        "smoke",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


@pytest.mark.timeout(240)
def test_a_real_cluster_loses_a_worker_and_finishes_every_cell_once(toy_plugins, tmp_path):
    if not Path(DASK).exists():
        pytest.skip("the `dask` command (distributed's CLI) is not installed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = _start(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], tmp_path / "scheduler.log"
    )
    workers = []
    try:
        deadline = time.monotonic() + 90
        for i in range(2):
            workers.append(
                _start(
                    [
                        DASK,
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--local-directory",
                        str(tmp_path / f"worker{i}"),
                    ],
                    tmp_path / f"worker{i}.log",
                )
            )
        _wait_for_workers(address, 2, deadline)

        out = tmp_path / "dask"
        run = subprocess.Popen(
            _run_args(out, "--executor", "dask", "--scheduler", address),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        cells = out / "cells"
        while time.monotonic() < deadline and not (cells.exists() and any(cells.glob("*.json"))):
            time.sleep(0.1)
        assert run.poll() is None, "the run ended before a worker could be lost"
        _stop(workers[0])  # lose a worker while cells are in flight
        output, _ = run.communicate(timeout=max(10.0, deadline - time.monotonic()))
        assert run.returncode == 0, output
        assert "6 computed, 0 failed" in output, output

        serial = tmp_path / "serial"
        subprocess.run(_run_args(serial, "--executor", "serial"), check=True, capture_output=True, timeout=120)
        assert _rates(out) == _rates(serial)
        assert len(list(cells.glob("*.json"))) == 6
        stored = [json.loads(p.read_text())["status"] for p in cells.glob("*.json")]
        assert stored == ["ok"] * 6
    finally:
        for process in (*workers, scheduler):
            _stop(process)
