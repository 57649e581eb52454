"""Bilinear resizing of 8-bit images, bit for bit as Pillow does it.

The paper's code (leieric/NERD-RCC, ``dataloaders.py``) feeds MNIST and Fashion-MNIST to
its 32 x 32 generators through torchvision's ``Resize(32)``, that is Pillow's bilinear
resize of the 28 x 28 uint8 image. This module reproduces Pillow's algorithm
(``libImaging/Resample.c``): a triangle filter on pixel centres (output pixel i samples
the input at (i + 1/2) n_in / n_out), stretched by n_in / n_out when shrinking, taps
outside the image dropped and the rest renormalized; weights in 22-bit fixed point;
a horizontal pass rounded to uint8, then a vertical pass rounded to uint8.
"""

from __future__ import annotations

import numpy as np

_PRECISION_BITS = 32 - 8 - 2  # Pillow's PRECISION_BITS for 8-bit images
_CHUNK = 2048  # images per block, to bound the float64 work arrays


def bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) fixed-point weights (integers, each row summing to about 2**22)."""
    scale = n_in / n_out
    support = max(scale, 1.0)  # the bilinear filter's support (1) stretched when shrinking
    weights = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        taps = np.arange(lo, hi)
        w = np.maximum(0.0, 1.0 - np.abs((taps - center + 0.5) / support))
        weights[i, lo:hi] = w / w.sum()
    return np.trunc(weights * (1 << _PRECISION_BITS) + 0.5)


def _round(acc: np.ndarray) -> np.ndarray:
    """Pillow's fixed-point rounding and clipping to uint8 of accumulated sums."""
    half = 1 << (_PRECISION_BITS - 1)
    return np.clip(np.floor((acc + half) / (1 << _PRECISION_BITS)), 0, 255)


def resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """(..., H, W) uint8 images -> (..., height, width) uint8, bilinear as in Pillow."""
    if images.dtype != np.uint8:
        raise TypeError(f"resize needs uint8 images, got {images.dtype}")
    lead, (h, w) = images.shape[:-2], images.shape[-2:]
    flat = images.reshape(-1, h, w)
    wx = bilinear_weights(w, width)  # (width, w)
    wy = bilinear_weights(h, height)  # (height, h)
    out = np.empty((len(flat), height, width), dtype=np.uint8)
    for start in range(0, len(flat), _CHUNK):
        block = flat[start : start + _CHUNK].astype(np.float64)  # sums stay exact integers below 2**53
        rows = _round(block @ wx.T)  # horizontal pass: (b, h, width)
        out[start : start + _CHUNK] = _round(wy @ rows)  # vertical pass: (b, height, width)
    return out.reshape(*lead, height, width)
