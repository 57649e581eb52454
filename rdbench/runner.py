"""The runner: plan the grid of cells, run what is not done yet, write the results.

A run is the grid sources x methods x targets x seeds. Cells already finished in the
output folder are skipped, so rerunning a command computes nothing twice, and a run that
was killed resumes where it stopped. Each finished cell is stored as it arrives; a cell
that fails is recorded and the run goes on.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rdbench.cells import CellSpec
from rdbench.executors import Executor
from rdbench.profiles import RUNNER_PROFILES
from rdbench.registry import Entry, Registry
from rdbench.store import ResultStore
from rdbench.targets import Target, TargetError


class PlanError(ValueError):
    """The requested grid cannot be built (no sources, no methods, bad targets...)."""


@dataclass
class RunSummary:
    planned: int
    skipped: int
    computed: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        lines = [
            f"{self.planned} cells planned: {self.skipped} already done, {self.computed} computed, "
            f"{len(self.failed)} failed ({self.seconds:.1f} s)."
        ]
        for result in self.failed:
            spec = result["spec"]
            first = (result.get("error") or "").splitlines()[0] if result.get("error") else "?"
            lines.append(f"  FAILED {spec['source']} / {spec['method']} / {spec['target']} / seed {spec['seed']}: {first}")
        return "\n".join(lines)


def parse_overrides(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["nerd.steps=100", "blahut-arimoto.n_samples=500"]`` -> {name: {key: value}}.

    Values are read as JSON when they parse (numbers, booleans, lists), else as strings.
    """
    import json

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        lhs, sep, raw = item.partition("=")
        name, dot, key = lhs.strip().rpartition(".")
        if not sep or not dot or not name or not key:
            raise PlanError(f"cannot read setting {item!r}: write NAME.KEY=VALUE, e.g. blahut-arimoto.n_samples=500")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(name, {})[key] = value
    return out


def plan(
    registry: Registry,
    sources: Sequence[Entry],
    methods: Sequence[Entry],
    *,
    profile: str = "default",
    targets: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | None = None,
    skipped: list[tuple[str, str, str]] | None = None,
) -> list[CellSpec]:
    """The grid of cells, in a stable order.

    ``device`` (``cpu``, ``cuda``, ``cuda:1``) is given to every method whose record has a
    ``device`` setting; ``overrides`` (from ``--set``) win over it. Pairs whose distortion
    measures do not meet (see :attr:`PluginRecord.distortions`) are left out and appended
    to ``skipped`` as (source, method, reason).
    """
    if profile not in RUNNER_PROFILES:
        raise PlanError(f"unknown profile {profile!r}; choose one of {', '.join(RUNNER_PROFILES)}")
    if not sources:
        raise PlanError("no sources selected; see `rdbench list sources`")
    if not methods:
        raise PlanError("no estimators or codecs selected; see `rdbench list estimators` and `rdbench list codecs`")
    overrides = dict(overrides or {})
    known = {e.name for e in (*sources, *methods)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise PlanError(f"--set names {', '.join(unknown)}, which is not a selected source or method")
    for text in targets or ():
        Target.parse(text)
    n_test = RUNNER_PROFILES[profile].n_test
    specs = []
    for source in sources:
        source_targets = tuple(targets) if targets else source.record.default_targets(profile)
        if not source_targets:
            raise PlanError(f"source {source.name!r} declares no targets for profile {profile!r}; pass --targets")
        source_settings = source.record.settings(profile, overrides.get(source.name))
        for method in methods:
            reason = method.record.mismatch(source.record)
            if reason is not None:
                if skipped is not None:
                    skipped.append((source.name, method.name, reason))
                continue
            extra = {"device": device} if device and "device" in method.record.defaults else {}
            method_settings = method.record.settings(profile, {**extra, **overrides.get(method.name, {})})
            for target in source_targets:
                for seed in seeds:
                    specs.append(
                        CellSpec(
                            source=source.name,
                            source_settings=source_settings,
                            source_version=source.version,
                            method=method.name,
                            method_kind=method.kind,
                            method_settings=method_settings,
                            method_version=method.version,
                            target=str(Target.parse(target)),
                            seed=int(seed),
                            n_test=n_test,
                            profile=profile,
                        )
                    )
    if not specs:
        raise PlanError("no selected method can run on the selected sources (distortion measures or required features); see the notes above")
    return specs


def execute(
    specs: Sequence[CellSpec],
    store: ResultStore,
    executor: Executor,
    *,
    timeout: float | None,
    progress: bool = True,
) -> RunSummary:
    """Run the cells of ``specs`` not already done in ``store``; store each as it finishes."""
    t0 = time.perf_counter()
    unique = list({s.cell_id: s for s in specs}.values())
    todo = [s for s in unique if not store.is_done(s.cell_id)]
    summary = RunSummary(planned=len(unique), skipped=len(unique) - len(todo))
    bar = tqdm(
        total=len(todo),
        desc="cells",
        unit="cell",
        disable=not progress or not todo,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    bar.set_postfix(failed=0)
    with bar:
        for result in executor.run(todo, timeout, str(store.root.absolute())):
            store.write(result)
            summary.computed += 1
            if result["status"] != "ok":
                summary.failed.append(result)
                bar.set_postfix(failed=len(summary.failed))
            bar.update(1)
    summary.seconds = time.perf_counter() - t0
    return summary


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def report(out: str | os.PathLike[str]) -> tuple[Path, list[Path]]:
    """Rebuild ``OUT/leaderboard.parquet``, ``OUT/summary.md`` and ``OUT/plots/*.png``
    from the stored cells."""
    from rdbench import leaderboard, plots

    store = ResultStore(out)
    table = leaderboard.build(store)
    path = leaderboard.write(table, Path(out) / "leaderboard.parquet")
    summary = (
        "# rdbench leaderboard\n\nRates in bits per source realization; distortion per realization.\n\n"
        f"```\n{leaderboard.format_rankings(table)}\n```\n"
    )
    (Path(out) / "summary.md").write_text(summary)
    figures = plots.plot_all(table, Path(out) / "plots")
    return path, figures


__all__ = ["PlanError", "RunSummary", "TargetError", "execute", "plan", "report"]
