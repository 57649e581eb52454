"""The HTML report (`rdbench report OUT --html`): self-contained, escaped, the same tables as
`rdbench leaderboard`, and rendered by a real headless Chromium where one is installed."""

from __future__ import annotations

import html
import json
import re
import sys

import matplotlib.image
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner
from conftest import HERE, PluginSite

from rdbench import html_report, plots
from rdbench import leaderboard as lb
from rdbench.cli import main
from rdbench.rankings import reference_curve, tables
from rdbench.registry import get_registry

SOURCES = ("bernoulli", "gaussian")
BROWSER = html_report.find_browser()
needs_browser = pytest.mark.skipif(
    BROWSER is None,
    reason=f"no headless browser on PATH (tried {', '.join(html_report.BROWSERS)}): the page is not rendered; "
    "install one, e.g. `apt-get install chromium`",
)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A smoke run on two sources with Blahut-Arimoto, a failing estimator and a toy codec
    (one point off target, one at a slope target), reported with --html."""
    root = tmp_path_factory.mktemp("html-report")
    site = PluginSite(root / "site")
    site.add("rdbench-toy", {"toy": "toy_plugin"}, {"toy_plugin": (HERE / "toy_plugin.py").read_text()})
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site.root))
        mp.setenv("PYTHONPATH", str(site.root))
        get_registry(refresh=True)
        args = ["--sources", ",".join(SOURCES), "--estimators", "blahut-arimoto,toy-raise"]
        args += ["--codecs", "toy-quantizer", "--targets", "D/Dmax=0.5,slope=4", "--profile", "smoke"]
        run = CliRunner().invoke(main, ["run", *args, "--out", str(out), "--executor", "serial", "--no-progress"])
        assert run.exit_code == 1, run.output  # toy-raise fails, by design
        plain = CliRunner().invoke(main, ["report", str(out)])
        assert plain.exit_code == 0, plain.output
        assert not (out / "report").exists() and "html:" not in plain.output
        report = CliRunner().invoke(main, ["report", str(out), "--html"])
        assert report.exit_code == 0, report.output
        yield out, report.output
    for name in [m for m in sys.modules if m.startswith("toy_")]:
        del sys.modules[name]
    get_registry(refresh=True)


def _tables_of(page: str, anchor: str) -> tuple[list[str], list[list[str]]]:
    """(header texts, row texts) of the ranking table with id ``anchor`` on a page."""
    block = re.search(rf'<div class="ranking" id="{re.escape(anchor)}">(.*?)</table>', page, re.S)
    assert block, anchor

    def cells(tag: str, text: str) -> list[str]:
        found = re.findall(rf"<{tag}\b[^>]*>(.*?)</{tag}>", text, re.S)
        return [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in found]

    body = block.group(1).split("<tbody>", 1)[1]
    return cells("th", block.group(1)), [cells("td", row) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def _section(page: str, source: str) -> str:
    start = page.index(f'<section class="source" id="source-{source}">')
    end = page.find('<section class="source"', start + 1)
    return page[start : end if end > 0 else page.index('<section id="problems">')]


def test_page_has_the_leaderboard_tables_and_is_self_contained(results):
    out, output = results
    index = out / "report" / "index.html"
    assert f"html: {index}" in output
    page = index.read_text()
    frame = lb.read(out)
    for source, named in tables(frame).items():
        assert set(named) == {"estimates", "codecs"}
        for name, table in named.items():
            header, rows = _tables_of(page, f"source-{source}-{name}")
            assert header == list(table.columns)
            assert rows == [[html_report._text(v) for v in row] for row in table.itertuples(index=False, name=None)]
            if "reference" in table.attrs:
                assert f"(reference: {table.attrs['reference']})" in page
    # self-contained: nothing to fetch, no scripts; the only links are anchors and the cells' files
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b|@import|@font-face", page, re.I)
    assert not re.search(r"https?://", re.sub(r'\sxmlns(:\w+)?="[^"]*"', "", page))
    assert not re.search(r"url\((?!#)", page)
    hrefs = re.findall(r'\bhref="([^"]*)"', page)
    ids = set(re.findall(r'\bid="([^"]*)"', page))
    assert len(ids) == len(re.findall(r'\bid="', page)), "duplicate ids"
    for href in hrefs:
        assert href.startswith("#") or href.startswith("../cells/"), href
        assert href[1:] in ids if href.startswith("#") else (index.parent / href).is_file()
    assert sum(h.startswith("../cells/") for h in hrefs) == frame["cell_id"].nunique()


def test_plugin_strings_are_escaped(results):
    out, _ = results
    frame = lb.read(out)
    evil = "<script>alert('x')</script>"
    frame.loc[frame["method"] == "toy-quantizer", "method"] = evil
    frame.loc[frame["source"] == "bernoulli", "source"] = f"bern{evil}"
    frame["error"] = frame["error"].where(frame["error"].isna(), evil)
    frame["host"] = evil
    frame["method_settings"] = json.dumps({"note": evil})
    page = html_report.render(frame)
    assert "<script" not in page.lower()
    assert page.count("&lt;script&gt;") > 10  # tables, cells, problems, the plots' legends


@needs_browser
def test_chromium_renders_the_page(results, tmp_path):
    out, _ = results
    index = out / "report" / "index.html"
    shot = CliRunner().invoke(main, ["report", str(out), "--html", "--screenshot"])
    assert shot.exit_code == 0, shot.output
    png = index.parent / "screenshot.png"
    assert f"screenshot: {png}" in shot.output
    dom = html_report.run_browser(html_report.browser_command(index, BROWSER, dump_dom=True), timeout=120)
    frame = lb.read(out)

    for source in SOURCES:
        section = _section(dom, source)
        assert f"<h2>{source}</h2>" in section
        assert section.count("<svg") == 1
        texts = [html.unescape(t) for t in re.findall(r"<text\b[^>]*>([^<]*)</text>", section)]
        assert "rate (bits per realization)" in texts
        measure = {"bernoulli": "Hamming distortion", "gaussian": "squared error"}[source]
        assert f"distortion per realization ({measure})" in texts
        assert "exact R(D)" in texts and "blahut-arimoto (estimate)" in texts and "toy-quantizer (codec)" in texts
        assert any(t.startswith("one-shot guarantee R+log2(R+1)+5") for t in texts)
        for name in ("estimates", "codecs"):
            header, rows = _tables_of(section, f"source-{source}-{name}")
            assert header[:3] == ["rank", "method", "points"]
            assert [r[1] for r in rows] == [{"estimates": "blahut-arimoto", "codecs": "toy-quantizer"}[name]]
        assert section.count('<details class="cell') == frame.loc[frame["source"] == source, "cell_id"].nunique()
    problems = dom[dom.index('<section id="problems">') :]
    assert "4 failed cell(s) or target(s)" in problems and "boom from the toy estimator" in problems
    assert "2 flagged point(s) (off_target 2)" in problems and "toy-quantizer" in problems

    image = matplotlib.image.imread(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.shape[1] == 1200 and 1500 < image.shape[0] < 30000
    colors = len(np.unique((image[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert colors > 50 and image[..., :3].std() > 0.05


def _frame(points: list[dict]) -> pd.DataFrame:
    """A leaderboard frame of synthetic estimator and codec points on one source."""
    base = {"source": "s", "seed": 0, "status": "ok", "profile": "smoke", "method_settings": "{}"}
    rows = [{**base, "cell_id": f"{p['method']}-{p['target']}", **p} for p in points]
    return pa.Table.from_pylist(rows, schema=lb.ARROW_SCHEMA).to_pandas()


def test_guarantee_line_uses_the_reference_curve_alone():
    """Without an exact R(D) the one-shot guarantee is drawn from the single curve the codec
    rankings use as reference (not from every estimator's points at once, which zigzags)."""
    points = []
    for i, d in enumerate((0.2, 0.4, 0.6)):
        for method, bound, rate in (("tight", "upper", 3 - i), ("loose", "upper", 4 - i), ("est", "estimate", 1 + i)):
            points.append(dict(method=method, method_kind="estimator", bound=bound, target=f"D={d}", distortion=d))
            points[-1].update(rate_bits=float(rate), target_distortion=d)
    points.append(dict(method="codec", method_kind="codec", bound="operational", target="D=0.4", distortion=0.4))
    points[-1].update(rate_bits=5.0, target_distortion=0.4)
    frame = _frame(points)
    name, _ = reference_curve(frame)
    assert name == "tight (upper bound)"
    got, d, r = plots._guarantee_reference(frame, None)
    assert got == name and d.min() == pytest.approx(0.2) and d.max() == pytest.approx(0.6)
    assert np.all(np.diff(d) > 0) and np.all(np.diff(r) <= 1e-12)  # one monotone curve
    assert r[0] == pytest.approx(3.0) and r[-1] == pytest.approx(1.0)
    assert plots._guarantee_reference(_frame(points[:-1]), None)[0] == name  # with or without the codec


def test_screenshot_option_and_browser_command(tmp_path):
    """--screenshot needs --html; the browser is pointed at the page's file:// address."""
    result = CliRunner().invoke(main, ["report", str(tmp_path), "--screenshot"])
    assert result.exit_code == 2 and "--screenshot needs --html" in result.output
    assert html_report.browser_command(tmp_path / "p.html", "chromium", screenshot=tmp_path / "s.png")[-1] == (
        (tmp_path / "p.html").absolute().as_uri()
    )


def test_plots_draw_one_mean_per_target_with_the_seed_range():
    """Three seeds of one estimator at two targets: the line goes through the two per-target
    means (not through six points in distortion order), with error bars from the seeds'
    smallest to largest rate."""
    import matplotlib.pyplot as plt

    points = []
    for seed, shift in enumerate((0.0, 0.3, -0.3)):
        for d, rate in ((0.2, 3.0), (0.5, 1.0)):
            point = dict(method="est", method_kind="estimator", bound="estimate", target=f"D={d}", seed=seed)
            points.append({**point, "distortion": d + 0.01 * seed, "rate_bits": rate + shift, "target_distortion": d})
    frame = _frame(points)
    frame["cell_id"] = [f"cell-{p['seed']}-{p['target']}" for p in points]
    fig = plots._figure(frame)
    try:
        (ax,) = fig.axes
        (line,) = [line for line in ax.lines if line.get_label().startswith("est")]
        assert list(line.get_ydata()) == pytest.approx([3.0, 1.0])
        assert list(line.get_xdata()) == pytest.approx([0.21, 0.51])
        assert "seed range" in line.get_label()
        (bars,) = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
        spans = sorted((float(seg[:, 1].min()), float(seg[:, 1].max())) for seg in bars.get_segments())
        assert spans == [pytest.approx((0.7, 1.3)), pytest.approx((2.7, 3.3))]
    finally:
        plt.close(fig)
