"""Saving and loading a trained generator without unpickling.

A generator file (the ``generator.pt`` artifact of a NERD cell) is written by
:func:`torch.save` and holds only plain containers, strings, numbers and tensors::

    {"format": FORMAT, "config": <generator_config(...)>, "beta": <beta*, nats>,
     "state_dict": {<parameter name>: <tensor>}}

:func:`load_generator` reads it with ``torch.load(..., weights_only=True)``, which refuses
any other object (no arbitrary code runs), rebuilds the architecture from the config and
loads the weights. safetensors would do as well, but is not a dependency of rdbench.
"""

from __future__ import annotations

import io
import os
from typing import Any

import torch
from torch import nn

from rdbench_plugins.nerd.generators import build_generator

FORMAT = "rdbench-nerd-generator/1"


def generator_bytes(generator: nn.Module, config: dict[str, Any], beta: float) -> bytes:
    """The file contents for ``generator`` (built from ``config``) and its slope beta* (nats)."""
    buffer = io.BytesIO()
    state = {name: tensor.detach().cpu().clone() for name, tensor in generator.state_dict().items()}
    torch.save({"format": FORMAT, "config": config, "beta": float(beta), "state_dict": state}, buffer)
    return buffer.getvalue()


def read_generator_file(source: str | os.PathLike[str] | bytes) -> dict[str, Any]:
    """The stored dict (format, config, beta, state_dict) of a path or the file's bytes."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    with stream:
        try:
            data = torch.load(stream, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for malformed or unsafe files
            raise ValueError(f"not a NERD generator file: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a NERD generator file (expected format {FORMAT!r})")
    return data


def load_generator(
    source: str | os.PathLike[str] | bytes, config: dict[str, Any] | None = None, device: str = "cpu"
) -> nn.Module:
    """Rebuild a trained generator G: z (B, latent_dim) -> y (B, *shape), in eval mode.

    source: a path to a generator file or its bytes. config: the architecture (the
    ``generator`` entry of the cell's details); when given it must equal the stored one.
    Sample reproductions with ``G(torch.randn(B, config["latent_dim"]))``.
    """
    data = read_generator_file(source)
    if config is not None and dict(config) != data["config"]:
        raise ValueError(f"generator config {dict(config)} differs from the stored {data['config']}")
    generator = build_generator(data["config"])
    generator.load_state_dict(data["state_dict"])
    return generator.to(device).eval()
