"""The runner: plan the grid of cells, run what is not done yet, write the results.

A run is the grid sources x methods x targets x seeds. Cells already finished in the
output folder are skipped, so rerunning a command computes nothing twice, and a run that
was killed resumes where it stopped. Each finished cell is stored as it arrives; a cell
that fails is recorded and the run goes on.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rdbench.executors import Executor
from rdbench.profiles import RUNNER_PROFILES
from rdbench.registry import Entry, Registry, get_registry
from rdbench.spec import CELL_FORMAT, CellSpec, code_fingerprint, file_hashes, method_fields, rdbench_fingerprint
from rdbench.store import ResultStore, atomic_write
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
            lines.append(
                f"  FAILED {spec['source']} / {spec['method']} / {','.join(spec['targets'])} / "
                f"seed {spec['seed']}: {first}"
            )
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


#: Seeds are stored as int64 and fed to numpy's SeedSequence.
MAX_SEED = 2**63 - 1


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
    """The grid of cells, in a stable order, every setting checked and resolved.

    ``device`` (``cpu``, ``cuda``, ``cuda:1``) is given to every method whose record has a
    ``device`` setting; ``overrides`` (from ``--set``) win over it and are checked against
    each record's defaults. Each source is created once here, so its targets are resolved
    and each method's settings completed (:attr:`PluginRecord.resolve`) before any cell runs.
    A method with ``curve=True`` gets one cell per seed holding all of the source's targets.
    Pairs whose distortion measures or features do not meet are left out and appended to
    ``skipped`` as (source, method, reason).
    """
    if profile not in RUNNER_PROFILES:
        raise PlanError(f"unknown profile {profile!r}; choose one of {', '.join(RUNNER_PROFILES)}")
    if not sources:
        raise PlanError("no sources selected; see `rdbench list sources`")
    if not methods:
        raise PlanError("no estimators or codecs selected; see `rdbench list estimators` and `rdbench list codecs`")
    bad_seeds = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED]
    if bad_seeds or not seeds:
        raise PlanError(f"seeds must be whole numbers from 0 to 2^63 - 1, got {bad_seeds or 'none'}")
    overrides = dict(overrides or {})
    entries = {e.name: e for e in (*sources, *methods)}
    unknown = sorted(set(overrides) - set(entries))
    if unknown:
        raise PlanError(f"--set names {', '.join(unknown)}, which is not a selected source or method")
    try:
        checked = {name: entries[name].record.check_settings(values) for name, values in overrides.items()}
        target_texts = [str(Target.parse(text)) for text in targets or ()]
    except ValueError as exc:
        raise PlanError(f"--set {exc}" if not isinstance(exc, TargetError) else str(exc)) from None
    n_test = RUNNER_PROFILES[profile].n_test
    rdbench_code = rdbench_fingerprint()
    specs = []
    for entry in sources:
        source_targets = target_texts or [str(Target.parse(t)) for t in entry.record.default_targets(profile)]
        if not source_targets:
            raise PlanError(f"source {entry.name!r} declares no targets for profile {profile!r}; pass --targets")
        source, common, source_files = _planned_source(entry, profile, checked.get(entry.name, {}), source_targets)
        for method in methods:
            reason = method.record.mismatch(entry.record)
            if reason is not None:
                if skipped is not None:
                    skipped.append((entry.name, method.name, reason))
                continue
            extra = {"device": device} if device and "device" in method.record.defaults else {}
            settings = method.record.settings(profile, {**extra, **checked.get(method.name, {})})
            try:
                fields = method_fields(method, settings, source)
            except Exception as exc:  # noqa: BLE001 - a plugin's resolve or a named file
                raise PlanError(f"{method.name} on {entry.name}: {exc}") from None
            fields["files"] = {**source_files, **fields["files"]}
            groups = [tuple(source_targets)] if method.record.curve else [(t,) for t in source_targets]
            for group in groups:
                for seed in seeds:
                    specs.append(
                        CellSpec(
                            **common,
                            **fields,
                            targets=group,
                            seed=int(seed),
                            n_test=n_test,
                            rdbench_code=rdbench_code,
                            profile=profile,
                            size=math.prod(source.shape),
                        )
                    )
    if not specs:
        raise PlanError(
            "no selected method can run on the selected sources (distortion measures or required features); "
            "see the notes above"
        )
    return specs


def _planned_source(
    entry: Entry, profile: str, overrides: Mapping[str, Any], targets: Sequence[str]
) -> tuple[Any, dict[str, Any], dict[str, str]]:
    """The source created for planning, its part of each cell's spec, and the hashes of
    the files its settings name."""
    try:
        settings = entry.record.check_settings(entry.record.settings(profile, overrides))
        source = entry.create(settings)
        for text in targets:
            Target.parse(text).resolve(source)
        files = file_hashes(entry, settings, "source")
    except TargetError as exc:
        raise PlanError(f"source {entry.name!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a plugin's source that cannot be built is a plan error
        raise PlanError(
            f"source {entry.name!r} could not be created with {settings}: {type(exc).__name__}: {exc}"
        ) from None
    common = {
        "source": entry.name,
        "source_settings": settings,
        "source_version": entry.version,
        "source_code": code_fingerprint(entry.plugin.distribution, entry.plugin.module),
    }
    return source, common, files


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
    # estimators first, larger realizations (the longest cells) first within each kind, and a
    # cell that reads another's (NERD-RCC reads nerd's) starts after it
    todo = sorted(
        (s for s in unique if not _done(store, s.cell_id)), key=lambda s: (s.method_kind != "estimator", -s.size)
    )
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
        for result in executor.run(todo, timeout, str(store.root.absolute()), after=dependencies(todo)):
            store.write(result)
            summary.computed += 1
            if result["status"] != "ok":
                summary.failed.append(result)
                bar.set_postfix(failed=len(summary.failed))
            bar.update(1)
    summary.seconds = time.perf_counter() - t0
    return summary


def dependencies(specs: Sequence[CellSpec]) -> dict[str, set[str]]:
    """Cell id -> the ids of the cells among ``specs`` it reads: those of the estimators its
    record ``reads``, on the same source and seed (NERD-RCC's cells wait for ``nerd``'s)."""
    registry = get_registry()
    cells: dict[tuple[str, str, int], set[str]] = {}
    for spec in specs:
        if spec.method_kind == "estimator":
            cells.setdefault((spec.method, spec.source, spec.seed), set()).add(spec.cell_id)
    after = {}
    for spec in specs:
        entry = registry.entries(spec.method_kind).get(spec.method)
        reads = entry.record.reads if entry is not None else ()
        ids = set().union(*(cells.get((name, spec.source, spec.seed), set()) for name in reads))
        if ids:
            after[spec.cell_id] = ids
    return after


def _done(store: ResultStore, cell_id: str) -> bool:
    """The cell is stored, finished ok, in the current format (failed cells are retried)."""
    result = store.read(cell_id)
    return result is not None and result.get("status") == "ok" and result.get("cell_format") == CELL_FORMAT


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def report(out: str | os.PathLike[str], *, all_cells: bool = False) -> tuple[Path, list[Path]]:
    """Rebuild ``OUT/leaderboard.parquet``, ``OUT/summary.md`` and ``OUT/plots/*.png`` from
    the stored cells of the folder's plan (every cell of the current format with
    ``all_cells``, or when the folder has no plan)."""
    from rdbench import leaderboard, plans, plots
    from rdbench.rankings import format_rankings

    store = ResultStore(out)
    plan_data = plans.read(out)
    cells = None if all_cells or plan_data is None else set(plan_data["cells"])
    table = leaderboard.build(store, cells)
    path = leaderboard.write(table, Path(out) / "leaderboard.parquet")
    lines = ["# rdbench leaderboard", "", "Rates in bits per source realization; distortion per realization.", ""]
    if plan_data is not None:
        lines += [
            f"Plan: `{plans.request_of(plan_data).command()}`, planned {plan_data['planned_at']} with rdbench "
            f"{plan_data['rdbench_version']} at commit {plan_data['git_commit'] or 'unknown'}.",
            "",
            "Code fingerprints: " + ", ".join(f"{k} `{v}`" for k, v in plan_data["code"].items()) + ".",
            "",
        ]
    if cells is not None:
        missing = cells - set(table["cell_id"])
        others = [r["cell_id"] for r in leaderboard.current_results(store) if r["cell_id"] not in cells]
        if missing:
            lines += [f"{len(missing)} cell(s) of the plan are not stored yet (the run was stopped early).", ""]
        if others:
            lines += [
                f"{len(others)} other stored cell(s) are not part of this plan "
                f"(`rdbench report {out} --all` includes them).",
                "",
            ]
    lines += ["```", format_rankings(table), "```", ""]
    atomic_write(Path(out) / "summary.md", "\n".join(lines).encode())
    figures = plots.plot_all(table, Path(out) / "plots")
    return path, figures


def check(registry: Registry, out: str | os.PathLike[str]) -> tuple[bool, str]:
    """Whether the stored results of ``out`` are current for the checked-out code: its
    plan's request planned again must give the same cells, each stored ok."""
    from rdbench import leaderboard, plans

    plan_data = plans.read(out)
    if plan_data is None:
        return False, f"{out} has no readable {plans.PLAN_FILE}; run `rdbench run --out {out}` first"
    request = plans.request_of(plan_data)
    sources = registry.select("source", request.sources)
    methods = registry.select("estimator", request.estimators) + registry.select("codec", request.codecs)
    specs = plan(
        registry,
        sources,
        methods,
        profile=request.profile,
        targets=request.targets,
        seeds=request.seeds,
        overrides=parse_overrides(request.settings),
        device=request.device,
    )
    now = {s.cell_id for s in specs}
    stored = {r["cell_id"] for r in leaderboard.current_results(ResultStore(out)) if r["status"] == "ok"}
    stale = now - stored
    if not stale and now == set(plan_data["cells"]):
        return True, f"current: all {len(now)} cells of `{request.command()}` match the checked-out code"
    return False, (
        f"stale: {len(stale)} of {len(now)} cells of `{request.command()}` are not stored for the "
        f"checked-out code; regenerate with `{request.command()} --out {out}`"
    )


__all__ = ["PlanError", "RunSummary", "TargetError", "check", "execute", "plan", "report"]
