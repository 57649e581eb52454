"""The ``datasets`` plugin and the data-file machinery: formats, checksums, downloads, runs.

Every data file here is written by the test in the real format (gzip-compressed IDX,
MATLAB v5) and served, for downloads, by a local HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rdbench import leaderboard
from rdbench.cli import main
from rdbench.data import DataError, DataFile, Dataset
from rdbench.download import download
from rdbench.registry import PluginError, get_registry
from rdbench_plugins.datasets import idx
from rdbench_plugins.datasets.resize import resize
from rdbench_plugins.datasets.sources import IDX_FILES, SVHN_FILES, DigitsImages, FileImages
from rdbench_plugins.datasets.svhn import read_images

TRAIN, TEST = IDX_FILES["train"], IDX_FILES["test"]


def idx_bytes(array: np.ndarray) -> bytes:
    """The gzip-compressed IDX encoding of ``array`` (uint8 or big-endian int16)."""
    code = {np.dtype("u1"): 0x08, np.dtype(">i2"): 0x0B}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.tobytes(), mtime=0)


def dataset_of(folder: Path, files: dict[str, bytes], name: str = "tiny", urls: tuple[str, ...] = ()) -> Dataset:
    """A Dataset whose checksums are those of ``files``; the files are written to folder/name."""
    (folder / name).mkdir(parents=True, exist_ok=True)
    entries = []
    for file_name, blob in files.items():
        (folder / name / file_name).write_bytes(blob)
        entries.append(
            DataFile(
                file_name, len(blob), hashlib.sha256(blob).hexdigest(), urls or (f"http://127.0.0.1:9/{file_name}",)
            )
        )
    return Dataset(name, tuple(entries))


def tiny_mnist(tmp_path: Path, n_train: int = 12, n_test: int = 7) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """IDX files of 28 x 28 images; image i of a split has every pixel distinct from other images."""
    rng = np.random.default_rng(5)
    train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    return dataset_of(tmp_path, {TRAIN: idx_bytes(train), TEST: idx_bytes(test)}), train, test


# -- file formats ------------------------------------------------------------------------


def test_idx_files_read_back(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.gz").write_bytes(idx_bytes(images))
    np.testing.assert_array_equal(idx.read(tmp_path / "a.gz"), images)
    signed = np.array([[-2, 300], [7, -32768]], dtype=">i2")
    (tmp_path / "b.gz").write_bytes(idx_bytes(signed))
    out = idx.read(tmp_path / "b.gz")
    assert out.dtype == np.int16 and out.dtype.isnative
    np.testing.assert_array_equal(out, signed)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (idx_bytes(np.zeros((3, 2, 2), np.uint8))[:-9], "truncated"),  # cut inside the gzip trailer
        (idx_bytes(np.zeros((3, 2, 2), np.uint8))[:20], "truncated"),
        (b"plain text, not gzip", "not a valid gzip file"),
        (gzip.compress(b"\x01\x02\x08\x01\x00\x00\x00\x01x"), "not an IDX file"),
        (gzip.compress(b"\x00\x00\x07\x01\x00\x00\x00\x01x"), "unknown IDX type code 0x07"),
        (gzip.compress(b"\x00\x00\x08\x03\x00\x00\x00\x02"), "header of 3 dimensions is cut short"),
        (gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 2, 2) + bytes(7)), "holds 7"),
        (gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 2, 2) + bytes(9)), "holds 9"),
    ],
)
def test_malformed_idx_files_are_clear_errors(tmp_path, blob, message):
    path = tmp_path / "bad.gz"
    path.write_bytes(blob)
    with pytest.raises(DataError, match=message) as info:
        idx.read(path)
    assert str(path) in str(info.value)


def test_svhn_mat_files_read_back_and_malformed_ones_are_errors(tmp_path):
    from scipy.io import savemat

    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)  # rows, cols, RGB, image
    path = tmp_path / "test_32x32.mat"
    savemat(path, {"X": x, "y": np.arange(5)[:, None]}, do_compression=True)
    images = read_images(path)
    assert images.shape == (5, 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[3, 1], x[:, :, 1, 3])  # image 3, green channel
    cut = tmp_path / "cut.mat"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="not a readable MATLAB v5 file or is truncated"):
        read_images(cut)
    savemat(tmp_path / "wrong.mat", {"X": x[:, :, :1].astype(np.float64)})
    with pytest.raises(DataError, match=r"shape \(32, 32, 3, n\) and type uint8, found float64"):
        read_images(tmp_path / "wrong.mat")


def test_resize_is_pillow_bilinear_bit_for_bit():
    from PIL import Image  # a dependency of matplotlib

    images = np.random.default_rng(1).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    for h, w in ((32, 32), (13, 20)):
        ours = resize(images, h, w)
        pillow = np.stack([np.asarray(Image.fromarray(a).resize((w, h), Image.BILINEAR)) for a in images])
        np.testing.assert_array_equal(ours, pillow)


# -- verification -------------------------------------------------------------------------


def test_missing_and_wrong_files_are_named_with_the_fix(tmp_path):
    dataset, _, _ = tiny_mnist(tmp_path)
    assert dataset.problem(tmp_path) is None
    assert dataset.locate(TEST, tmp_path) == tmp_path / "tiny" / TEST
    folder = tmp_path / "tiny"

    (folder / TEST).unlink()
    problem = dataset.problem(tmp_path)
    assert TEST in problem and str(folder) in problem
    assert f"rdbench data download tiny --data-dir {tmp_path}" in problem
    with pytest.raises(DataError, match="not found"):
        dataset.locate(TEST, tmp_path)

    blob = bytearray((folder / TRAIN).read_bytes())
    blob[40] ^= 0xFF  # same size, one byte flipped
    (folder / TRAIN).write_bytes(bytes(blob))
    states = {c.file.name: c.state for c in dataset.check(tmp_path)}
    assert states == {TRAIN: "checksum mismatch", TEST: "missing"}
    with pytest.raises(DataError, match=f"{TRAIN} is corrupted or not the official file: its SHA-256 is"):
        dataset.locate(TRAIN, tmp_path)
    (folder / TRAIN).write_bytes(bytes(blob[:-5]))
    with pytest.raises(DataError, match=rf"has {len(blob) - 5} bytes, expected {len(blob)}"):
        dataset.locate(TRAIN, tmp_path)


def test_a_truncated_but_checksummed_file_is_a_clear_error(tmp_path):
    _, train, test = tiny_mnist(tmp_path)
    cut = dataset_of(tmp_path, {TRAIN: idx_bytes(train)[:-30], TEST: idx_bytes(test)}, name="cut")
    source = FileImages(cut, IDX_FILES, idx.read, (1, 28, 28), tmp_path)
    with pytest.raises(DataError, match=r"truncated .*delete it and run `rdbench data download cut"):
        source.sample(3, 0, "train")
    assert source.sample(3, 0, "test").shape == (3, 1, 28, 28)  # the other split is fine


# -- the sources ---------------------------------------------------------------------------


def test_idx_images_sample_their_split_deterministically(tmp_path):
    dataset, train, test = tiny_mnist(tmp_path)
    source = FileImages(dataset, IDX_FILES, idx.read, (1, 28, 28), tmp_path)
    x = source.sample(5, seed=3, split="train")
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_array_equal(source.sample(5, 3, "train"), x)
    assert not np.array_equal(source.sample(5, 4, "train"), x)
    as_bytes = {img.tobytes() for img in train}
    assert {np.rint(img[0] * 255).astype(np.uint8).tobytes() for img in x} <= as_bytes
    assert len({img.tobytes() for img in x}) == 5  # no repeats while n <= N
    y = source.sample(7, 3, "test")
    assert sorted(np.rint(img[0] * 255).astype(np.uint8).tobytes() for img in y) == sorted(
        img.tobytes() for img in test
    )
    # n > N: whole passes over the split, each image floor(n/N) or ceil(n/N) times
    many = source.sample(30, 0, "train").reshape(30, -1)
    _, counts = np.unique(many, axis=0, return_counts=True)
    assert len(counts) == 12 and set(counts) == {2, 3}
    assert source.sample(0, 0, "train").shape == (0, 1, 28, 28)
    # D_max = E||X - mean||^2 over the test split, pixels in [0, 1]
    t = test.reshape(len(test), -1) / 255.0
    assert source.d_max == pytest.approx(((t - t.mean(0)) ** 2).sum(1).mean(), rel=1e-12)


def test_idx_images_are_resized_to_32_as_the_paper_does(tmp_path):
    from PIL import Image

    dataset, train, _ = tiny_mnist(tmp_path)
    source = FileImages(dataset, IDX_FILES, idx.read, (1, 32, 32), tmp_path)
    assert source.shape == (1, 32, 32)
    expected = np.stack([np.asarray(Image.fromarray(a).resize((32, 32), Image.BILINEAR)) for a in train])
    np.testing.assert_array_equal(source.images("train")[:, 0], expected)
    x = source.sample(4, 0, "train")
    assert x.shape == (4, 1, 32, 32) and 0 <= x.min() and x.max() <= 1


def test_svhn_images_come_from_the_mat_files(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    folder = tmp_path / "svhn-tiny"
    folder.mkdir()
    blobs = {}
    for split, n in (("train", 6), ("test", 4)):
        savemat(folder / SVHN_FILES[split], {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)})
        blobs[SVHN_FILES[split]] = (folder / SVHN_FILES[split]).read_bytes()
    dataset = dataset_of(tmp_path, blobs, name="svhn-tiny")
    source = FileImages(dataset, SVHN_FILES, read_images, (3, 32, 32), tmp_path)
    assert source.sample(9, 0, "test").shape == (9, 3, 32, 32)
    assert len(source.images("train")) == 6 and source.d_max > 0


def test_digits_source(monkeypatch):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from rdbench_plugins.datasets import sources

    direct = sources.digits_pixels()
    np.testing.assert_array_equal(direct, sklearn_datasets.load_digits().images)
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)  # the bundled file not found
    np.testing.assert_array_equal(sources.digits_pixels(), direct)
    monkeypatch.undo()
    entry = get_registry().get("source", "digits")
    assert entry.record.extras == ("sklearn",) and entry.available  # unavailable without scikit-learn
    source = DigitsImages()
    train, test = source.images("train"), source.images("test")
    assert len(train) == 1198 and len(test) == 599 and train.shape[1:] == (1, 8, 8)
    x = source.sample(2000, 0, "train")
    assert x.shape == (2000, 1, 8, 8) and x.min() == 0 and x.max() == 1
    t = test.reshape(599, -1) / 16.0
    assert source.d_max == pytest.approx(((t - t.mean(0)) ** 2).sum(1).mean(), rel=1e-12)


def test_the_plugin_module_is_cheap_to_import():
    code = (
        "import sys, rdbench_plugins.datasets as p; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy', 'PIL') "
        "or m in ('rdbench_plugins.datasets.sources', 'rdbench_plugins.datasets.idx')]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- downloads from a local server ---------------------------------------------------------


class _Server:
    """An HTTP server on 127.0.0.1 serving ``routes`` (path -> body); ``short`` paths
    announce more bytes than they send (a dropped connection)."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.short: set[str] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) + (100 if self.path in server.short else 0)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def test_download_verifies_and_places_files_atomically(tmp_path, server):
    dataset, train, test = tiny_mnist(tmp_path / "source")
    source_dir = tmp_path / "source" / "tiny"
    server.routes = {f"/m/{name}": (source_dir / name).read_bytes() for name in (TRAIN, TEST)}
    root = tmp_path / "data"
    lines: list[str] = []
    mirror_then_official = Dataset(
        "tiny",
        tuple(
            DataFile(f.name, f.size, f.sha256, (f"{server.url}/gone/{f.name}", f"{server.url}/m/{f.name}"))
            for f in dataset.files
        ),
    )
    paths = download(mirror_then_official, root, progress=False, log=lines.append)
    assert paths == [root / "tiny" / TRAIN, root / "tiny" / TEST]
    assert sorted(p.name for p in (root / "tiny").iterdir()) == sorted([TRAIN, TEST])  # no partial files
    assert any("gone" in line and "404" in line for line in lines)  # the first URL failed, the second served
    np.testing.assert_array_equal(
        FileImages(dataset, IDX_FILES, idx.read, (1, 28, 28), root).images("test")[:, 0], test
    )
    lines.clear()
    download(dataset, root, url_base=f"{server.url}/m", progress=False, log=lines.append)
    assert all("already present and verified" in line for line in lines)


@pytest.mark.parametrize("fault", ["wrong bytes", "dropped connection", "not found"])
def test_a_failed_download_leaves_nothing_behind(tmp_path, server, fault):
    dataset, _, _ = tiny_mnist(tmp_path / "source")
    good = (tmp_path / "source" / "tiny" / TRAIN).read_bytes()
    if fault == "wrong bytes":
        server.routes[f"/{TRAIN}"] = bytes(len(good))  # right size, wrong content
    elif fault == "dropped connection":
        server.routes[f"/{TRAIN}"] = good[:100]
        server.short.add(f"/{TRAIN}")
    root = tmp_path / "data"
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / f".{TRAIN}.part").write_bytes(b"left by a killed download")
    expected = {"wrong bytes": "does not match the expected", "dropped connection": "announces", "not found": "404"}[
        fault
    ]
    with pytest.raises(DataError, match=f"could not fetch {TRAIN}") as info:
        download(dataset, root, url_base=server.url, progress=False, log=lambda line: None)
    assert expected in str(info.value)
    assert list((root / "tiny").iterdir()) == []


def test_a_dropped_connection_mid_file_leaves_nothing_behind(tmp_path, server):
    dataset, _, _ = tiny_mnist(tmp_path / "source")
    good = (tmp_path / "source" / "tiny" / TRAIN).read_bytes()
    server.routes[f"/{TRAIN}"] = good[:-100]
    server.short.add(f"/{TRAIN}")  # announces the right size, then stops short
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"received \d+ bytes, expected"):
        download(dataset, root, url_base=server.url, progress=False, log=lambda line: None)
    assert not (root / "tiny" / TRAIN).exists() and not list((root / "tiny").glob(".*"))


# -- the command line and the runner --------------------------------------------------------

TOY_PLUGIN = """
from rdbench import SourceRecord, hookimpl
from rdbench.data import DataFile, Dataset

DATASET = Dataset("toy-images", (
    DataFile("train-images-idx3-ubyte.gz", {train_size}, "{train_sha}", ("http://127.0.0.1:9/x",)),
    DataFile("t10k-images-idx3-ubyte.gz", {test_size}, "{test_sha}", ("http://127.0.0.1:9/y",)),
))


def make():
    from rdbench_plugins.datasets import idx
    from rdbench_plugins.datasets.sources import IDX_FILES, FileImages
    return FileImages(DATASET, IDX_FILES, idx.read, (1, 28, 28))


@hookimpl
def rdbench_sources():
    return [SourceRecord("toy-images", "tiny IDX images", "toy_images:make", data=DATASET,
                         targets={{"default": ("D/Dmax=0.5",)}}, distortions=("squared_error",))]
"""


@pytest.fixture
def toy_images(plugin_site, tmp_path, monkeypatch):
    """A third-party source with a Dataset of tiny IDX files, served at server_files."""
    dataset, _, _ = tiny_mnist(tmp_path / "served", n_train=40, n_test=30)
    files = {f.name: f for f in dataset.files}
    code = TOY_PLUGIN.format(
        train_size=files[TRAIN].size,
        train_sha=files[TRAIN].sha256,
        test_size=files[TEST].size,
        test_sha=files[TEST].sha256,
    )
    plugin_site.add("rdbench-toy-images", {"toy-images": "toy_images"}, {"toy_images": code})
    monkeypatch.setenv("RDBENCH_DATA_DIR", str(tmp_path / "default-data"))  # the CLI may overwrite it
    get_registry(refresh=True)
    return tmp_path / "served" / "tiny"


def test_sources_with_missing_data_are_skipped_by_all_and_refused_by_name(toy_images, tmp_path):
    registry = get_registry()
    skipped: list = []
    chosen = [e.name for e in registry.select("source", "all", skipped=skipped)]
    assert "toy-images" not in chosen and "mnist" not in chosen and "gaussian-m20" in chosen
    reasons = {e.name: reason for e, reason in skipped}
    assert (
        "train-images-idx3-ubyte.gz" in reasons["toy-images"]
        and "rdbench data download toy-images" in reasons["toy-images"]
    )
    with pytest.raises(
        PluginError, match=r"source 'mnist' is unavailable: data file .* not found in .*rdbench data download mnist"
    ):
        registry.select("source", "mnist,gaussian-m20")


def test_data_commands_and_a_run_on_downloaded_files(toy_images, tmp_path, server):
    data = tmp_path / "data"
    listing = CliRunner().invoke(main, ["data", "list", "--data-dir", str(data)])
    assert listing.exit_code == 0, listing.output
    assert "toy-images: run `" in listing.output and "missing" in listing.output
    assert f"rdbench data download toy-images --data-dir {data}" in listing.output

    server.routes = {f"/{p.name}": p.read_bytes() for p in toy_images.iterdir()}
    bad = CliRunner().invoke(
        main,
        ["data", "download", "toy-images", "mnist", "--data-dir", str(data), "--url-base", server.url, "--no-progress"],
    )
    assert bad.exit_code == 1 and "could not fetch train-images-idx3-ubyte.gz" in bad.output
    assert "downloaded and verified" in bad.output  # toy-images first, then mnist (not served) fails
    assert not (data / "mnist").exists() or not list((data / "mnist").iterdir())
    listing = CliRunner().invoke(main, ["data", "list", "--data-dir", str(data)])
    assert "toy-images: ready (sources: toy-images)" in listing.output

    # --data-dir reaches the worker processes that run the cells
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rdbench.cli",
            "run",
            "--sources",
            "toy-images",
            "--estimators",
            "blahut-arimoto",
            "--codecs",
            "none",
            "--profile",
            "smoke",
            "--out",
            str(out),
            "--data-dir",
            str(data),
            "--workers",
            "1",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    table = leaderboard.read(out)
    assert list(table["status"]) == ["ok"] and table["d_max"].iloc[0] > 0


def test_digits_end_to_end_while_other_datasets_are_absent(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.setenv("RDBENCH_DISABLE_PLUGINS", "analytic-sources")
    monkeypatch.setenv("RDBENCH_DATA_DIR", str(tmp_path / "elsewhere"))  # the CLI overwrites it
    empty = tmp_path / "empty"
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--sources",
            "all",
            "--estimators",
            "blahut-arimoto",
            "--codecs",
            "none",
            "--profile",
            "smoke",
            "--out",
            str(out),
            "--executor",
            "serial",
            "--no-progress",
            "--data-dir",
            str(empty),
        ],
    )
    assert result.exit_code == 0, result.output
    for name, first_file in (
        ("mnist", "train-images-idx3-ubyte.gz"),
        ("fashion-mnist", "train-images-idx3-ubyte.gz"),
        ("svhn", "train_32x32.mat"),
    ):
        assert (
            f"note: skipping source '{name}': data file {first_file} of '{name}' not found in {empty / name}; "
            f"run `rdbench data download {name} --data-dir {empty}`"
        ) in result.output
    table = pd.read_parquet(out / "leaderboard.parquet")
    offline = {"digits", "mnist-5k"} if get_registry().get("source", "mnist-5k").available else {"digits"}
    assert set(table["source"]) == offline and set(table["status"]) == {"ok"}
    table = table[table["source"] == "digits"]
    assert list(table["target"]) == ["D/Dmax=0.6"]
    assert table["d_max"].iloc[0] == pytest.approx(DigitsImages().d_max)
    assert (table["distortion"] / table["d_max"]).tolist() == pytest.approx([0.6], rel=1e-3)
    assert (table["rate_bits"] > 0).all() and table["rate_true_bits"].isna().all()
    assert (out / "plots" / "digits.png").stat().st_size > 1000


def test_every_method_runs_on_digits_in_the_smoke_profile(tmp_path):
    """The image variant of every method, end to end through the CLI on real images: each cell
    finishes, codecs decode what they encoded (evaluate_codec checks), bound kinds are right,
    and every point lies above the lower bound's line at its own distortion; NERD-RCC codes its
    100 test images with the conv NERD's Q*_Y and beta*."""
    pytest.importorskip("sklearn")
    pytest.importorskip("torch")
    from conftest import run_smoke

    cells = run_smoke(
        tmp_path,
        "--sources",
        "digits",
        "--estimators",
        "all",
        "--codecs",
        "ntc,block-ntc,pfr-nerd,orc-nerd",
        "--targets",
        "D/Dmax=0.6",
        "--executor",
        "serial",
    )
    by_method = {c["spec"]["method"]: c for c in cells}
    assert set(by_method) == {
        "blahut-arimoto",
        "nerd",
        "wgd",
        "sandwich-upper",
        "sandwich-lower",
        "ntc",
        "block-ntc",
        "pfr-nerd",
        "orc-nerd",
    }
    assert all(c["status"] == "ok" for c in cells), [(c["spec"]["method"], c.get("error")) for c in cells]
    point = {name: c["points"][0] for name, c in by_method.items()}
    assert point["sandwich-upper"]["bound"] == "upper" and point["sandwich-lower"]["bound"] == "lower"
    assert point["nerd"]["details"]["generator"]["kind"] == "conv"
    low = point["sandwich-lower"]
    slope = low["details"]["slope_bits"]

    def line(d: float) -> float:  # the lower bound's line, valid at every D, clipped at 0
        return max(low["details"]["line_rate_bits"] + slope * (low["distortion"] - d), 0.0)

    for name in ("sandwich-upper", "nerd", "ntc", "block-ntc", "blahut-arimoto", "pfr-nerd", "orc-nerd"):
        assert point[name]["rate_bits"] >= line(point[name]["distortion"]) - 0.25, name
    for name in ("pfr-nerd", "orc-nerd"):
        details = point[name]["details"]
        assert details["channel"] == "nerd" and details["n_test"] == 50 and details["exact_search"] is False
        # the run's nerd cell (same settings, target, seed) gave the channel: read back, not retrained
        assert details["nerd_cell"] == by_method["nerd"]["cell_id"]
        assert details["rate_parameter_bits"] == pytest.approx(point["nerd"]["rate_bits"], abs=1e-12)
        # the channel is NERD's at this target: the code lands near NERD's distortion, within
        # the rate guarantee C + log2(C + 1) + 5 of NERD-RCC (paper eq. 25)
        assert point[name]["distortion"] == pytest.approx(details["nerd_distortion"], rel=0.15), name
        assert point[name]["rate_bits"] < details["guarantee_bits"], name
    assert 0 < low["rate_bits"] < point["blahut-arimoto"]["rate_bits"]
