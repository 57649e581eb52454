"""The static HTML report: ``OUT/report/index.html``.

One self-contained page (inline SVG plots and CSS; no scripts, fonts, images or network; it
works from ``file://``) rendered from the Jinja2 templates in ``rdbench/templates`` with
autoescaping: per source its R-D plot (:func:`rdbench.plots.svg_source`), the ranked tables
of :func:`rdbench.rankings.tables` and each cell's provenance (a ``<details>`` element, with
a link to the cell's JSON file under ``OUT/cells/``); then the failed cells and the flagged
points. Rates are bits per source realization, distortions per realization.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

import rdbench
from rdbench.store import atomic_write

#: The report's folder inside OUT, and its page.
REPORT_DIR = "report"
INDEX = "index.html"
#: Headless browsers tried by :func:`find_browser`, in this order.
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: Where the page links the cells' JSON files, relative to the page.
CELLS_HREF = "../cells"


def write(out: str | os.PathLike[str], frame: pd.DataFrame | None = None) -> Path:
    """Write ``OUT/report/index.html`` for ``frame`` (default: ``OUT/leaderboard.parquet``),
    atomically; returns its path."""
    from rdbench import leaderboard, plans

    out = Path(out)
    if frame is None:
        frame = leaderboard.read(out)
    html = render(frame, plans.read(out))
    return atomic_write(out / REPORT_DIR / INDEX, html.encode())


def render(frame: pd.DataFrame, plan: dict[str, Any] | None = None, cells_href: str = CELLS_HREF) -> str:
    """The report page for a leaderboard ``frame`` (and the folder's plan, if any) as HTML."""
    return _environment().get_template("index.html.j2").render(**_context(frame, plan, cells_href))


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("rdbench", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


class _Ids:
    """HTML ids from arbitrary names: letters, digits, ``-`` and ``_`` only, and unique."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, name: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_-]+", "_", name)
        anchor, n = base, 1
        while anchor in self.seen:
            n += 1
            anchor = f"{base}-{n}"
        self.seen.add(anchor)
        return anchor


def _text(value: Any, na: str = "n/a") -> str:
    """A table value as ``rdbench leaderboard`` prints it (floats to 4 significant digits)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return na
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def _context(frame: pd.DataFrame, plan: dict[str, Any] | None, cells_href: str) -> dict[str, Any]:
    from rdbench import plots
    from rdbench.rankings import _labelled, tables

    ids = _Ids()
    labelled = _labelled(frame)
    variant_of = dict(zip(labelled["cell_id"], labelled["variant"]))
    ranked = tables(frame) if len(frame) else {}
    source_id: dict[str, str] = {}
    sources = []
    for source, rows in frame.groupby("source", sort=True):
        anchor = source_id[str(source)] = ids(f"source-{source}")
        cells = _cells(rows, variant_of, cells_href)
        first_cell: dict[str, str] = {}
        for cell in cells:
            first_cell.setdefault(cell["variant"], cell["id"])
        measure = rows["distortion_measure"].dropna()
        d_max = rows["d_max"].dropna()
        sources.append(
            {
                "name": str(source),
                "id": anchor,
                "svg": Markup(plots.svg_source(rows, id_prefix=f"{anchor}-")),
                "measure": measure.iloc[0] if len(measure) else None,
                "d_max": _text(d_max.iloc[0]) if len(d_max) else None,
                "tables": [
                    _table(name, table, first_cell, ids(f"{anchor}-{name}"))
                    for name, table in ranked.get(str(source), {}).items()
                ],
                "cells": cells,
                "failed": int(len(rows[rows["status"] == "error"].drop_duplicates(["cell_id", "target"]))),
                "flagged": int(((labelled["source"] == source) & (labelled["status"] != "ok")).sum()),
            }
        )
    failed = frame[frame["status"] == "error"].drop_duplicates(["cell_id", "target"])
    flagged = labelled[labelled["status"] != "ok"]
    counts = ", ".join(f"{status} {n}" for status, n in flagged["status"].value_counts().sort_index().items())
    return {
        "version": rdbench.__version__,
        "plan": _plan(plan, frame),
        "sources": sources,
        "n_cells": int(frame["cell_id"].nunique()),
        "failed": [
            {
                "source": r.source,
                "source_id": source_id[str(r.source)],
                "method": r.method,
                "target": r.target,
                "seed": r.seed,
                "error": str(r.error).splitlines()[0] if isinstance(r.error, str) and r.error else "",
                "cell": f"cell-{r.cell_id}",
            }
            for r in failed.itertuples()
        ],
        "flagged": [
            {
                "source": r.source,
                "source_id": source_id[str(r.source)],
                "method": r.variant,
                "target": r.target,
                "seed": r.seed,
                "status": r.status,
                "distortion": _text(r.distortion, "-"),
                "target_distortion": _text(r.target_distortion, "-"),
                "cell": f"cell-{r.cell_id}",
            }
            for r in flagged.itertuples()
        ],
        "flagged_counts": counts,
    }


def _plan(plan: dict[str, Any] | None, frame: pd.DataFrame) -> dict[str, Any] | None:
    """What the page says about the folder's plan: its command, date, commit and fingerprints."""
    if plan is None:
        return None
    from rdbench import plans

    try:
        command = plans.request_of(plan).command()
    except (KeyError, TypeError):
        command = None
    return {
        "command": command,
        "planned_at": plan.get("planned_at"),
        "rdbench_version": plan.get("rdbench_version"),
        "git_commit": plan.get("git_commit") or "unknown",
        "code": sorted((plan.get("code") or {}).items()),
        "missing": len(set(plan.get("cells") or ()) - set(frame["cell_id"])),
    }


def _table(name: str, table: pd.DataFrame, first_cell: dict[str, str], anchor: str) -> dict[str, Any]:
    """One ranking table: its columns, rows of display text (method names linked to their
    first cell's provenance), notes and reference."""
    numeric = [c != "method" and pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
    rows = [
        [
            {
                "text": _text(value),
                "href": f"#{first_cell[value]}" if column == "method" and value in first_cell else None,
            }
            for column, value in zip(table.columns, row)
        ]
        for row in table.itertuples(index=False, name=None)
    ]
    return {
        "name": name,
        "id": anchor,
        "reference": table.attrs.get("reference"),
        "columns": [{"name": c, "numeric": n or c == "rank"} for c, n in zip(table.columns, numeric)],
        "rows": rows,
        "notes": list(table.attrs.get("notes", [])),
    }


def _pretty_json(text: Any) -> str:
    if not isinstance(text, str):
        return "n/a"
    try:
        return json.dumps(json.loads(text), indent=1, sort_keys=True)
    except ValueError:
        return text


def _cells(rows: pd.DataFrame, variant_of: dict[str, str], cells_href: str) -> list[dict[str, Any]]:
    """The provenance of each cell of one source's rows, in the leaderboard's order."""
    out = []
    for cell_id, part in rows.groupby("cell_id", sort=False):
        first = part.iloc[0]
        statuses = Counter(part["status"])
        status = (
            next(iter(statuses)) if len(statuses) == 1 else ", ".join(f"{s} {n}" for s, n in sorted(statuses.items()))
        )
        errors = [e for e in dict.fromkeys(part["error"]) if isinstance(e, str) and e]
        fields = [
            ("cell id", cell_id),
            (
                "kind",
                f"{first['method_kind']}" + (f", {first['coding']} coding" if isinstance(first["coding"], str) else ""),
            ),
            ("targets", ", ".join(dict.fromkeys(part["target"]))),
            ("seed", first["seed"]),
            ("profile", first["profile"]),
            ("status", status),
            ("method version", first["method_version"]),
            ("source version", first["source_version"]),
            ("rdbench version", first["rdbench_version"]),
            (
                "code fingerprints",
                f"rdbench {first['rdbench_code']}, source {first['source_code']}, method {first['method_code']}",
            ),
            (
                "python, numpy, torch",
                ", ".join(_text(first[c], "-") for c in ("python_version", "numpy_version", "torch_version")),
            ),
            ("host", first["host"]),
            ("finished at", first["finished_at"]),
            ("wall seconds", first["wall_seconds"]),
            ("CPU seconds", first["cpu_seconds"]),
            ("peak memory (MiB)", first["peak_memory_mb"]),
        ]
        out.append(
            {
                "id": f"cell-{cell_id}",
                "cell_id": cell_id,
                "href": f"{cells_href}/{cell_id}.json",
                "method": first["method"],
                "variant": variant_of.get(cell_id, first["method"]),
                "kind": first["method_kind"],
                "targets": ", ".join(dict.fromkeys(part["target"])),
                "seed": first["seed"],
                "status": status,
                "status_class": "ok" if status == "ok" else "error" if status == "error" else "flagged",
                "fields": [(label, _text(value, "-")) for label, value in fields],
                "blocks": [
                    ("method settings", _pretty_json(first["method_settings"])),
                    ("source settings", _pretty_json(first["source_settings"])),
                    *[("error", e) for e in errors],
                ],
            }
        )
    return out


def find_browser() -> str | None:
    """The path of a Chromium-family browser on PATH (:data:`BROWSERS`), or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def browser_command(
    page: str | os.PathLike[str],
    browser: str = "chromium",
    *,
    screenshot: str | os.PathLike[str] | None = None,
    dump_dom: bool = False,
    width: int = 1200,
    height: int = 3000,
    profile_dir: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The headless Chromium command line that renders ``page`` (a file) into a ``screenshot``
    PNG of ``width`` x ``height`` pixels, or prints its DOM (``dump_dom``)."""
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--disable-background-networking",
        "--no-first-run",
        f"--window-size={width},{height}",
    ]
    if profile_dir is not None:
        command.append(f"--user-data-dir={profile_dir}")
    if screenshot is not None:
        command.append(f"--screenshot={Path(screenshot).absolute()}")
    if dump_dom:
        command.append("--dump-dom")
    return [*command, Path(page).absolute().as_uri()]


def run_browser(command: Sequence[str], timeout: float = 120.0) -> str:
    """Run a :func:`browser_command` (with a throwaway profile unless it names one); its stdout."""
    with tempfile.TemporaryDirectory(prefix="rdbench-chromium-") as profile:
        if not any(arg.startswith("--user-data-dir=") for arg in command):
            command = [*command[:-1], f"--user-data-dir={profile}", command[-1]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{command[0]} exited with {done.returncode}: {last}")
    return done.stdout


def screenshot(
    page: str | os.PathLike[str],
    png: str | os.PathLike[str],
    *,
    browser: str | None = None,
    width: int = 1200,
    height: int = 20000,
    timeout: float = 180.0,
) -> Path:
    """Render ``page`` with headless Chromium into ``png``, ``width`` pixels wide and cut just
    below the page's end; a page taller than ``height`` pixels shows its top (with a warning)."""
    from PIL import Image, ImageChops

    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError(f"no headless browser found (tried {', '.join(BROWSERS)}); install Chromium")
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    run_browser(browser_command(page, browser, screenshot=png, width=width, height=height), timeout=timeout)
    with Image.open(png) as shot:
        image = shot.convert("RGB")
    background = Image.new("RGB", image.size, image.getpixel((0, image.height - 1)))
    box = ImageChops.difference(image, background).getbbox()
    bottom = box[3] + 24 if box else image.height
    if bottom < image.height:
        image.crop((0, 0, image.width, bottom)).save(png)
    else:
        warnings.warn(f"{page} is taller than {height} px: {png} shows its top {height} px", stacklevel=2)
    return png
