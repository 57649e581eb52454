"""Shared fixtures: throwaway plugin distributions visible to importlib.metadata."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rdbench import Source, SquaredError
from rdbench.registry import get_registry

HERE = Path(__file__).parent


class PluginSite:
    """A folder on sys.path holding installed-looking distributions (a .dist-info each)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def add(
        self,
        dist: str,
        entry_points: dict[str, str],
        modules: dict[str, str],
        version: str = "1.0",
        requires: tuple[str, ...] = (),
        extras: tuple[str, ...] = (),
    ) -> None:
        for name, code in modules.items():
            path = self.root / (name.replace(".", "/") + ".py")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(code))
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        meta = ["Metadata-Version: 2.1", f"Name: {dist}", f"Version: {version}"]
        meta += [f"Provides-Extra: {e}" for e in extras] + [f"Requires-Dist: {r}" for r in requires]
        (info / "METADATA").write_text("\n".join(meta) + "\n")
        eps = "[rdbench]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(eps)


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """Install throwaway plugins for the duration of a test (and for its subprocesses)."""
    site = PluginSite(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site.root))
    monkeypatch.setenv("PYTHONPATH", str(site.root))
    yield site
    monkeypatch.undo()
    for name in [m for m in sys.modules if m.startswith("toy_")]:
        del sys.modules[name]
    get_registry(refresh=True)


@pytest.fixture
def toy_plugins(plugin_site):
    """The toy plugin of tests/toy_plugin.py (a codec and misbehaving estimators) installed."""
    plugin_site.add(
        "rdbench-toy",
        {"toy": "toy_plugin"},
        {"toy_plugin": (HERE / "toy_plugin.py").read_text()},
    )
    get_registry(refresh=True)
    return plugin_site


@pytest.fixture
def one_torch_thread():
    """Run a torch test on one thread (the suite's speed target is 2 cores), restoring the count."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def run_smoke(out, *args: str) -> list[dict]:
    """``rdbench run ARGS --profile smoke --out OUT``; asserts exit 0 and returns the stored cells."""
    import json

    from click.testing import CliRunner

    from rdbench.cli import main

    result = CliRunner().invoke(main, ["run", *args, "--profile", "smoke", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    return [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]


#: Small NERD budgets: a point trains in seconds on one core (NERD tests and NERD-RCC).
FAST_NERD = {
    "n_train": 8192,
    "pairs": 2**16,
    "m_train_max": 4096,
    "n_eval": 1024,
    "n_eval_coarse": 8192,
    "m_eval_max": 8192,
    "max_steps": 300,
    "window": 25,
    "anneal_steps": 50,
    "patience": 1,
}


class SmoothImages(Source):
    """Smooth random images: N(0, 1) pixels on a grid ``block`` times coarser, upsampled by
    repetition and cropped to ``shape``, plus N(0, 0.01) noise per pixel; squared error."""

    shape: tuple[int, int, int] = (1, 20, 20)
    block = 4
    distortion = SquaredError()

    def sample(self, n, seed, split="train"):
        rng = self.rng(seed, split)
        c, h, w = self.shape
        coarse = rng.normal(size=(n, c, -(-h // self.block), -(-w // self.block)))
        smooth = np.kron(coarse, np.ones((1, 1, self.block, self.block)))[..., :h, :w]
        return smooth + 0.1 * rng.normal(size=(n, *self.shape))
