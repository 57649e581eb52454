"""The ``rdbench`` command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from rdbench.data import ENV as DATA_ENV
from rdbench.data import DataError, Dataset
from rdbench.data import data_dir as resolve_data_dir
from rdbench.lock import LockError, OutputLock
from rdbench.registry import Entry, PluginError, Registry, get_registry
from rdbench.store import ResultStore, StoreWarning

KIND_OF = {"sources": "source", "estimators": "estimator", "codecs": "codec"}
_DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Data directory of real-data sources (default: ${DATA_ENV}, else ~/.cache/rdbench).",
)


DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps")


def _load_registry(ctx: click.Context) -> Registry:
    try:
        return get_registry(strict=ctx.find_root().params.get("strict_plugins") or None)
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None


def _registry(ctx: click.Context) -> Registry:
    """The registry, with a warning line for each plugin that was skipped."""
    registry = _load_registry(ctx)
    for plugin in registry.problems:
        first = (plugin.error or "").splitlines()[0]
        click.echo(
            f"warning: plugin {plugin.name!r} (distribution {plugin.distribution} {plugin.version}) was skipped: "
            f"{first} [rdbench plugins shows details; --strict-plugins makes this an error]",
            err=True,
        )
    return registry


@contextmanager
def _store_warnings_as_lines() -> Iterator[None]:
    """Show each file the result store skipped as one ``warning:`` line."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", StoreWarning)  # the store warns once per file itself
        show = warnings.showwarning

        def _show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, StoreWarning):
                click.echo(f"warning: {message}", err=True)
            else:
                show(message, category, *args, **kwargs)

        warnings.showwarning = _show
        yield


@contextmanager
def _locked(out: Path, purpose: str) -> Iterator[None]:
    """Hold OUT for this command; another rdbench holding it is a one-line error."""
    try:
        with OutputLock(out, purpose):
            yield
    except LockError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _stoppable_run(ctx: click.Context, store: ResultStore, cell_ids: Collection[str]) -> Iterator[None]:
    """Hold the run's folder; on SIGTERM, SIGINT or SIGHUP stop the workers, keep the
    finished cells, say how many there are and exit with 128 + the signal's number."""
    from rdbench.executors import RunInterrupted, stop_on_signals

    try:
        with _locked(store.root, "rdbench run"), stop_on_signals():
            yield
    except RunInterrupted as exc:
        done = sum(store.is_done(cell_id) for cell_id in cell_ids)
        click.echo(
            f"rdbench: stopped by {exc}: {done} of {len(cell_ids)} cells are done and kept in "
            f"{store.cells_dir}; rerun the same command to compute the rest",
            err=True,
        )
        ctx.exit(128 + exc.signum)


def _check_run_options(executor: str, scheduler: str | None, device: str | None) -> None:
    """Refuse options that cannot work together, before anything runs."""
    if scheduler is not None and executor != "dask":
        raise click.ClickException("--scheduler needs --executor dask")
    if device is None:
        return
    if not DEVICE.fullmatch(device):
        raise click.ClickException(f"--device must be cpu, cuda, cuda:N or mps, got {device!r}")
    if device.startswith("cuda"):
        try:
            import torch
        except (ImportError, OSError):
            return  # the methods that need torch say so themselves
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise click.ClickException(f"--device {device}: torch finds no CUDA device here; use --device cpu")
        if int(device.partition(":")[2] or 0) >= count:
            raise click.ClickException(
                f"--device {device}: torch finds {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )


def _check_writable(out: Path) -> None:
    """Refuse an output folder that cannot be created or written to."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise click.ClickException(
            f"cannot write to --out {out}: {exc.strerror or exc}; choose a writable folder"
        ) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rdbench")
@click.option(
    "--strict-plugins",
    is_flag=True,
    default=False,
    help="Fail on any plugin that cannot be loaded (also RDBENCH_STRICT_PLUGINS=1).",
)
@click.pass_context
def main(ctx: click.Context, strict_plugins: bool) -> None:
    """rdbench: how close is a compressor to the rate-distortion limit?

    Rates are bits per source realization; distortions are per realization.
    """
    ctx.with_resource(_store_warnings_as_lines())
    if strict_plugins:  # worker processes read the environment
        os.environ["RDBENCH_STRICT_PLUGINS"] = "1"


@main.command()
@click.option("--sources", default="all", show_default=True, help="Comma-separated source names, or 'all'.")
@click.option(
    "--estimators", default="all", show_default=True, help="Comma-separated estimator names, 'all' or 'none'."
)
@click.option("--codecs", default="all", show_default=True, help="Comma-separated codec names, 'all' or 'none'.")
@click.option("--profile", type=click.Choice(["smoke", "default", "paper"]), default="default", show_default=True)
@click.option("--targets", default=None, help="Override every source's targets, e.g. 'R=1,R=2' or 'D/Dmax=0.5'.")
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option(
    "--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("rdbench-results"), show_default=True
)
@click.option("--executor", type=click.Choice(["process", "serial", "dask"]), default="process", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel cells (default: CPU cores).")
@click.option(
    "--scheduler", default=None, help="Dask scheduler address (with --executor dask); a local cluster if omitted."
)
@click.option(
    "--cell-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds per cell (default: the profile's).",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="Override a setting, e.g. blahut-arimoto.n_samples=500.",
)
@click.option("--device", default=None, help="Torch device for neural methods: cpu (default), cuda, cuda:1.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@_DATA_DIR
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
    data_dir: Path | None,
) -> None:
    """Evaluate estimators and codecs on sources; write OUT/leaderboard.parquet and OUT/plots/."""
    from rdbench import plans
    from rdbench.executors import make_executor
    from rdbench.profiles import RUNNER_PROFILES
    from rdbench.runner import PlanError, default_workers, execute, parse_overrides, plan, report
    from rdbench.targets import TargetError

    _check_run_options(executor, scheduler, device)
    if data_dir is not None:  # worker processes read the environment
        os.environ[DATA_ENV] = str(data_dir.expanduser().absolute())
    registry = _registry(ctx)
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"{seeds!r}: seeds must be comma-separated integers", param_hint="--seeds") from None
    try:
        unavailable: list[tuple[Entry, str]] = []
        chosen = {
            kind: registry.select(KIND_OF[kind], spec, skipped=unavailable)
            for kind, spec in (("sources", sources), ("estimators", estimators), ("codecs", codecs))
        }
        for entry, reason in unavailable:
            click.echo(f"note: skipping {entry.kind} {entry.name!r}: {reason}", err=True)
        skipped: list[tuple[str, str, str]] = []
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

    by_method: dict[str, list[str]] = {}
    for source_name, method_name, reason in skipped:
        by_method.setdefault(method_name, []).append(f"{source_name} ({reason})")
    for method_name, pairs in by_method.items():
        click.echo(f"note: {method_name!r} cannot run on {', '.join(pairs)}; pairs skipped", err=True)
    _check_writable(out)
    workers = workers or default_workers()
    timeout = cell_timeout if cell_timeout is not None else RUNNER_PROFILES[profile].cell_timeout
    store = ResultStore(out)
    with _stoppable_run(ctx, store, {s.cell_id for s in specs}):
        request = plans.Request(
            sources=[e.name for e in chosen["sources"]],
            estimators=[e.name for e in chosen["estimators"]],
            codecs=[e.name for e in chosen["codecs"]],
            profile=profile,
            targets=[t for t in targets.split(",") if t.strip()] if targets else None,
            seeds=seed_list,
            settings=list(settings),
            device=device,
        )
        plans.write(out, request, specs)
        click.echo(f"rdbench: {len(specs)} cells ({profile} profile) -> {out}", err=True)
        summary = execute(
            specs,
            store,
            make_executor(executor, workers=workers, scheduler=scheduler),
            timeout=timeout,
            progress=not no_progress,
        )
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
    registry = _load_registry(ctx)
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
        click.echo(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "summary": e.record.summary,
                        "plugin": e.plugin.name,
                        "version": e.version,
                        "available": e.available,
                        "missing": list(e.missing),
                    }
                    for e in entries.values()
                ],
                indent=2,
            )
        )
        return
    for e in entries.values():
        flag = "" if e.available else f"  [unavailable: {e.install_hint()}]"
        click.echo(f"{e.name:<24} {e.record.summary}{flag}")


@main.command()
@click.argument("out", type=click.Path(exists=True, path_type=Path))
def leaderboard(out: Path) -> None:
    """Per-source rankings from OUT/leaderboard.parquet."""
    from pyarrow import ArrowException

    from rdbench import leaderboard as lb
    from rdbench.rankings import format_rankings

    try:
        table = lb.read(out)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    except (OSError, ValueError, ArrowException) as exc:
        path = out / "leaderboard.parquet" if out.is_dir() else out
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise click.ClickException(
            f"cannot read {path} ({reason}); rebuild it with `rdbench report {path.parent}`"
        ) from None
    click.echo(format_rankings(table))


@main.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--all", "all_cells", is_flag=True, help="Include every stored cell, not only those of the folder's plan."
)
@click.option(
    "--check",
    is_flag=True,
    help="Only say whether the stored results are current for the checked-out code (exit 1 if not).",
)
@click.option(
    "--html",
    is_flag=True,
    help="Also write OUT/report/index.html: one self-contained page of the plots, rankings and cell provenance.",
)
@click.option(
    "--screenshot",
    is_flag=True,
    help="With --html: also render OUT/report/screenshot.png of the page with headless Chromium.",
)
@click.pass_context
def report(ctx: click.Context, out: Path, all_cells: bool, check: bool, html: bool, screenshot: bool) -> None:
    """Rebuild OUT/leaderboard.parquet, OUT/summary.md and OUT/plots/ from the stored cells
    of the folder's last plan (and OUT/report/index.html with --html)."""
    from rdbench.runner import PlanError
    from rdbench.runner import check as check_current
    from rdbench.runner import report as build_report

    if screenshot and not html:
        raise click.UsageError("--screenshot needs --html")
    if check:
        try:
            current, message = check_current(_registry(ctx), out)
        except (PluginError, PlanError) as exc:
            raise click.ClickException(f"cannot plan {out}'s request with this code: {exc}") from None
        click.echo(message)
        ctx.exit(0 if current else 1)
    with _locked(out, "rdbench report"):
        path, figures = build_report(out, all_cells=all_cells)
        page = None
        if html:
            from rdbench import html_report

            page = html_report.write(out)
    click.echo(f"leaderboard: {path}\nplots: {', '.join(str(f) for f in figures)}")
    if page is not None:
        click.echo(f"html: {page}")
    if screenshot:
        try:
            shot = html_report.screenshot(page, page.parent / "screenshot.png")
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            raise click.ClickException(f"cannot render {page}: {exc}") from None
        click.echo(f"screenshot: {shot}")


@main.group()
def data() -> None:
    """Data files of real-data sources: their status, and fetching them (never silently)."""


def _datasets(ctx: click.Context) -> dict[str, tuple[Dataset, list[str]]]:
    """Every dataset a registered source declares, with the names of those sources."""
    found: dict[str, tuple[Dataset, list[str]]] = {}
    for entry in _registry(ctx).entries("source").values():
        if entry.record.data is not None:
            found.setdefault(entry.record.data.name, (entry.record.data, []))[1].append(entry.name)
    return found


@data.command("list")
@_DATA_DIR
@click.pass_context
def data_list(ctx: click.Context, data_dir: Path | None) -> None:
    """Each dataset's files in the data directory: verified, missing or wrong."""
    click.echo(f"data directory: {resolve_data_dir(data_dir)} (set by --data-dir or ${DATA_ENV})")
    for name, (dataset, users) in sorted(_datasets(ctx).items()):
        checks = dataset.check(data_dir)
        ready = all(c.state == "verified" for c in checks)
        hint = "ready" if ready else f"run `{dataset.download_command(data_dir)}`"
        about = "; ".join([f"sources: {', '.join(users)}", *([dataset.homepage] if dataset.homepage else [])])
        click.echo(f"{name}: {hint} ({about})")
        for c in checks:
            click.echo(f"  {c.file.name:<28} {c.file.size:>12,} B  {c.state}")


@data.command("download")
@click.argument("names", nargs=-1, required=True)
@_DATA_DIR
@click.option("--url-base", default=None, help="Fetch URL_BASE/<file name> instead of the official URLs (a mirror).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
@click.pass_context
def data_download(
    ctx: click.Context, names: tuple[str, ...], data_dir: Path | None, url_base: str | None, no_progress: bool
) -> None:
    """Fetch the files of datasets NAMES ('all' for every one), verify their SHA-256, place them atomically."""
    from rdbench.download import download

    known = _datasets(ctx)
    wanted = sorted(known) if names == ("all",) else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise click.ClickException(
            f"no dataset named {', '.join(map(repr, unknown))}; known datasets: {', '.join(sorted(known)) or '(none)'}"
        )
    for name in wanted:
        try:
            download(known[name][0], data_dir, url_base=url_base, progress=not no_progress, log=click.echo)
        except DataError as exc:
            raise click.ClickException(str(exc)) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
