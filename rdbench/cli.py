"""The ``rdbench`` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from rdbench.registry import KINDS, PluginError, Registry, get_registry

KIND_OF = {"sources": "source", "estimators": "estimator", "codecs": "codec"}


def _registry(ctx: click.Context) -> Registry:
    try:
        registry = get_registry(strict=ctx.find_root().params.get("strict_plugins") or None)
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None
    for plugin in registry.problems:
        first = (plugin.error or "").splitlines()[0]
        click.echo(
            f"warning: plugin {plugin.name!r} (distribution {plugin.distribution} {plugin.version}) was skipped: "
            f"{first} [rdbench plugins shows details; --strict-plugins makes this an error]",
            err=True,
        )
    return registry


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rdbench")
@click.option(
    "--strict-plugins",
    is_flag=True,
    default=False,
    help="Fail on any plugin that cannot be loaded (also RDBENCH_STRICT_PLUGINS=1).",
)
def main(strict_plugins: bool) -> None:
    """rdbench: how close is a compressor to the rate-distortion limit?

    Rates are bits per source realization; distortions are per realization.
    """
    if strict_plugins:  # worker processes read the environment
        os.environ["RDBENCH_STRICT_PLUGINS"] = "1"


@main.command()
@click.option("--sources", default="all", show_default=True, help="Comma-separated source names, or 'all'.")
@click.option("--estimators", default="all", show_default=True, help="Comma-separated estimator names, 'all' or 'none'.")
@click.option("--codecs", default="all", show_default=True, help="Comma-separated codec names, 'all' or 'none'.")
@click.option("--profile", type=click.Choice(["smoke", "default", "paper"]), default="default", show_default=True)
@click.option("--targets", default=None, help="Override every source's targets, e.g. 'R=1,R=2' or 'D/Dmax=0.5'.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("rdbench-results"), show_default=True)
@click.option("--executor", type=click.Choice(["process", "serial", "dask"]), default="process", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel cells (default: CPU cores).")
@click.option("--scheduler", default=None, help="Dask scheduler address (with --executor dask); a local cluster if omitted.")
@click.option("--cell-timeout", type=click.FloatRange(min=0, min_open=True), default=None, help="Seconds per cell (default: the profile's).")
@click.option("--set", "settings", multiple=True, metavar="NAME.KEY=VALUE", help="Override a setting, e.g. blahut-arimoto.n_samples=500.")
@click.option("--device", default=None, help="Torch device for neural methods: cpu (default), cuda, cuda:1.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.pass_context
def run(
    ctx: click.Context,
    sources: str,
    estimators: str,
    codecs: str,
    profile: str,
    targets: str | None,
    seeds: str,
    out: Path,
    executor: str,
    workers: int | None,
    scheduler: str | None,
    cell_timeout: float | None,
    settings: tuple[str, ...],
    device: str | None,
    no_progress: bool,
) -> None:
    """Evaluate estimators and codecs on sources; write OUT/leaderboard.parquet and OUT/plots/."""
    from rdbench.executors import make_executor
    from rdbench.profiles import RUNNER_PROFILES
    from rdbench.runner import PlanError, default_workers, execute, parse_overrides, plan, report
    from rdbench.store import ResultStore
    from rdbench.targets import TargetError

    registry = _registry(ctx)
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"{seeds!r}: seeds must be comma-separated integers", param_hint="--seeds") from None
    try:
        chosen = {kind: registry.select(KIND_OF[kind], spec) for kind, spec in
                  (("sources", sources), ("estimators", estimators), ("codecs", codecs))}
        for entry in (e for group in chosen.values() for e in group):
            if not entry.available:
                raise PluginError(f"{entry.kind} {entry.name!r} is unavailable: it needs {', '.join(entry.missing)}; {entry.install_hint()}")
        for kind, spec in (("estimators", estimators), ("codecs", codecs), ("sources", sources)):
            if spec.strip() == "all":
                skipped = [e for e in registry.entries(KIND_OF[kind]).values() if not e.available]
                for e in skipped:
                    click.echo(f"note: skipping {e.kind} {e.name!r} (needs {', '.join(e.missing)}; {e.install_hint()})", err=True)
        skipped: list[tuple[str, str]] = []
        specs = plan(
            registry,
            chosen["sources"],
            chosen["estimators"] + chosen["codecs"],
            profile=profile,
            targets=[t for t in targets.split(",") if t.strip()] if targets else None,
            seeds=seed_list,
            overrides=parse_overrides(settings),
            device=device,
            skipped=skipped,
        )
    except (PluginError, PlanError, TargetError) as exc:
        raise click.ClickException(str(exc)) from None

    for source_name, method_name in skipped:
        click.echo(f"note: {method_name!r} does not handle the distortion measure of {source_name!r}; pair skipped", err=True)
    workers = workers or default_workers()
    timeout = cell_timeout if cell_timeout is not None else RUNNER_PROFILES[profile].cell_timeout
    store = ResultStore(out)
    click.echo(f"rdbench: {len(specs)} cells ({profile} profile) -> {out}", err=True)
    summary = execute(specs, store, make_executor(executor, workers=workers, scheduler=scheduler), timeout=timeout, progress=not no_progress)
    path, figures = report(out)
    click.echo(summary.describe())
    click.echo(f"leaderboard: {path}\nplots: {', '.join(str(f) for f in figures)}")
    if not summary.ok:
        ctx.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """Every plugin: distribution, version, status and what it contributes."""
    registry = get_registry(strict=ctx.find_root().params.get("strict_plugins") or None)
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in registry.plugins], indent=2))
        return
    for p in registry.plugins:
        names = "; ".join(f"{k}s: {', '.join(v)}" for k, v in p.contributes.items() if v) or "-"
        click.echo(f"{p.name:<22} {p.status:<12} {p.distribution} {p.version:<10} {names}")
        if p.error:
            for line in p.error.splitlines():
                click.echo(f"    {line}")


@main.command("list")
@click.argument("kind", type=click.Choice(sorted(KIND_OF)))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_(ctx: click.Context, kind: str, as_json: bool) -> None:
    """Names and one-line summaries of the sources, estimators or codecs."""
    entries = _registry(ctx).entries(KIND_OF[kind])
    if as_json:
        click.echo(json.dumps([
            {"name": e.name, "summary": e.record.summary, "plugin": e.plugin.name, "version": e.version,
             "available": e.available, "missing": list(e.missing)}
            for e in entries.values()
        ], indent=2))
        return
    for e in entries.values():
        flag = "" if e.available else f"  [unavailable: {e.install_hint()}]"
        click.echo(f"{e.name:<24} {e.record.summary}{flag}")


@main.command()
@click.argument("out", type=click.Path(exists=True, path_type=Path))
def leaderboard(out: Path) -> None:
    """Per-source rankings from OUT/leaderboard.parquet."""
    from rdbench import leaderboard as lb

    try:
        click.echo(lb.format_rankings(lb.read(out)))
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
def report(out: Path) -> None:
    """Rebuild OUT/leaderboard.parquet and OUT/plots/ from the stored cells."""
    from rdbench.runner import report as build_report

    path, figures = build_report(out)
    click.echo(f"leaderboard: {path}\nplots: {', '.join(str(f) for f in figures)}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
