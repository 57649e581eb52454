"""The official files of MNIST, Fashion-MNIST and SVHN: names, sizes, SHA-256, URLs.

Only the image files are listed (R(D) does not use labels). Sizes and SHA-256 are those
TensorFlow Datasets pins (tensorflow/datasets,
``tensorflow_datasets/url_checksums/{mnist,fashion_mnist,svhn_cropped}.txt``); torchvision's
prototype datasets pin the same SHA-256 values for the original URLs (pytorch/vision,
``torchvision/prototype/datasets/_builtin/{mnist,svhn}.py``). A download is verified
against the checksum whatever URL served it, so a mirror is as safe as the original.

* MNIST (LeCun, Cortes and Burges): the original site http://yann.lecun.com/exdb/mnist/
  often refuses scripted downloads, so the two mirrors that TensorFlow Datasets (CVDF) and
  torchvision (PyTorch's OSSCI bucket) use come first and the original last.
* Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): Zalando's official bucket.
* SVHN cropped digits, format 2 (Netzer et al. 2011): the official Stanford site. MATLAB
  v5 files holding X (32, 32, 3, N) uint8 and labels y.
"""

from __future__ import annotations

from rdbench.data import DataFile, Dataset

_MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"


def _file(name: str, size: int, sha256: str, bases: tuple[str, ...]) -> DataFile:
    return DataFile(name, size, sha256, tuple(base + name for base in bases))


MNIST = Dataset(
    name="mnist",
    homepage="http://yann.lecun.com/exdb/mnist/",
    files=(
        _file(
            "train-images-idx3-ubyte.gz",
            9912422,
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            _MNIST_URLS,
        ),
        _file(
            "t10k-images-idx3-ubyte.gz",
            1648877,
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            _MNIST_URLS,
        ),
    ),
)

FASHION_MNIST = Dataset(
    name="fashion-mnist",
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    files=(
        _file(
            "train-images-idx3-ubyte.gz",
            26421880,
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            (_FASHION_URL,),
        ),
        _file(
            "t10k-images-idx3-ubyte.gz",
            4422102,
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            (_FASHION_URL,),
        ),
    ),
)

SVHN = Dataset(
    name="svhn",
    homepage="http://ufldl.stanford.edu/housenumbers/",
    files=(
        _file(
            "train_32x32.mat",
            182040794,
            "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
            (_SVHN_URL,),
        ),
        _file(
            "test_32x32.mat", 64275384, "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b", (_SVHN_URL,)
        ),
    ),
)
