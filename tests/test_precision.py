"""Mixed precision: large images train their conv layers in bfloat16, everything measured is
float32, and NERD-RCC's image candidates are drawn in bfloat16 by encoder and decoder alike."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import SmoothImages  # noqa: E402

from rdbench import Source, SquaredError  # noqa: E402
from rdbench.registry import get_registry  # noqa: E402
from rdbench.targets import Target  # noqa: E402
from rdbench_plugins._conv import ConvDown, ConvUp  # noqa: E402
from rdbench_plugins._precision import use_train_dtype  # noqa: E402
from rdbench_plugins.budgets import (  # noqa: E402
    resolve_nerd,
    resolve_ntc,
    resolve_rcc,
    resolve_sandwich_upper,
)
from rdbench_plugins.nerd.generators import build_generator, generator_config  # noqa: E402
from rdbench_plugins.nerd.storage import generator_bytes  # noqa: E402


def _layer_dtypes(module: torch.nn.Module, run) -> tuple[list[torch.dtype], torch.Tensor]:
    """The output dtypes of the conv and linear layers of ``module`` while ``run()`` runs, and its result."""
    seen: list[torch.dtype] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        for m in module.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))
    ]
    try:
        out = run()
    finally:
        for hook in hooks:
            hook.remove()
    return seen, out


def _stacks():
    torch.manual_seed(0)
    return {
        "down": (ConvDown(1, 8, 6), torch.rand(4, 1, 20, 20)),
        "up": (ConvUp(3, 8, 1, (20, 20)), torch.randn(4, 3, 5, 5)),
        "generator": (build_generator(generator_config((1, 20, 24), channels=4)), torch.randn(4, 128)),
    }


@pytest.mark.parametrize("name", ["down", "up", "generator"])
def test_a_training_step_computes_in_bfloat16_and_every_measurement_in_float32(name):
    """In bfloat16, a training-mode forward with gradients runs the heavy layers in bfloat16;
    ConvDown's last layer (latents, statistics), the generator's skip and every output stay
    float32. In eval mode or under no_grad (validation, calibration, read-out, coding) the
    module computes exactly what its float32 twin computes."""
    module, x = _stacks()[name]
    twin = copy.deepcopy(module)  # the same weights, trained in float32
    use_train_dtype(module, "bfloat16")

    dtypes, y = _layer_dtypes(module, lambda: module(x))
    assert torch.bfloat16 in dtypes and y.dtype == torch.float32
    if name == "down":
        assert dtypes[:-1] == [torch.bfloat16] * (len(dtypes) - 1) and dtypes[-1] == torch.float32
    if name == "generator":
        assert dtypes[-1] == torch.float32  # the linear skip from z
    with torch.no_grad():
        assert not torch.equal(y, twin(x))  # bfloat16 rounding shows in the output
        dtypes, y = _layer_dtypes(module, lambda: module(x))  # no_grad: a measurement
        assert set(dtypes) == {torch.float32} and torch.equal(y, twin(x))
    module.eval(), twin.eval()
    dtypes, y = _layer_dtypes(module, lambda: module(x))  # eval mode: a measurement
    assert set(dtypes) == {torch.float32} and torch.equal(y, twin(x))


def test_float32_training_never_touches_bfloat16():
    for module, x in _stacks().values():
        dtypes, y = _layer_dtypes(module, lambda m=module, x=x: m.train()(x))
        assert set(dtypes) == {torch.float32} and y.dtype == torch.float32
    with pytest.raises(ValueError, match="train_dtype must be one of float32, bfloat16"):
        use_train_dtype(ConvDown(1, 4, 4), "float16")


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((1, 28, 28), "bfloat16"),
        ((1, 20, 24), "bfloat16"),
        ((1, 16, 16), "float32"),
        ((1, 8, 8), "float32"),
        ((20,), "float32"),
    ],
)
def test_the_train_dtype_is_resolved_by_image_size_and_a_set_one_is_kept(shape, dtype):
    src = SimpleNamespace(shape=shape)
    for resolve in (resolve_ntc, resolve_nerd, resolve_sandwich_upper):
        assert resolve({"train_dtype": None}, src) == {"train_dtype": dtype}
        assert resolve({"train_dtype": "float32"}, src) == {"train_dtype": "float32"}
    assert use_train_dtype(ConvDown(1, 4, 4), None, shape).train_dtype == dtype  # the classes' own default
    assert resolve_rcc({"candidate_dtype": None}, src) == {
        "candidate_dtype": "bfloat16" if len(shape) == 3 else "float32"
    }


def test_a_bad_dtype_setting_is_refused_at_plan_time():
    registry = get_registry()
    for kind, name, key in [
        ("codec", "ntc", "train_dtype"),
        ("codec", "block-ntc", "train_dtype"),
        ("estimator", "nerd", "train_dtype"),
        ("estimator", "sandwich-upper", "train_dtype"),
        ("codec", "pfr-nerd", "candidate_dtype"),
    ]:
        with pytest.raises(ValueError, match=f'{key}.*one of "float32", "bfloat16"'):
            registry.get(kind, name).record.check_settings({key: "float16"})


def test_ntc_trained_in_bfloat16_lands_on_its_target_on_large_images(one_torch_thread):
    """A real training in bfloat16 (the default for images over 256 pixels) meets the
    distortion target within the codecs' 3 % tolerance, measured in float32 on a real
    bitstream, at a rate within 5 % of the same training in float32."""
    from rdbench_plugins.ntc.codec import NTC

    src = SmoothImages()
    x = src.sample(2000, 1, "test")
    rates, distortions = {}, {}
    for dtype in ("bfloat16", "float32"):
        codec = NTC(
            steps=300,
            finetune_steps=50,
            density_steps=100,
            n_train=4096,
            n_val=2048,
            batch_size=64,
            train_dtype=None if dtype == "bfloat16" else dtype,
        )
        codec.fit(src, Target.parse("D=12").resolve(src), 0)
        assert codec.model.synthesis.net.train_dtype == codec.model.analysis.net.train_dtype == dtype
        stream = codec.encode(x)
        distortions[dtype] = float(np.mean(src.distortion(x, codec.decode(stream))))
        rates[dtype] = 8 * len(stream) / len(x)
    assert abs(distortions["bfloat16"] / 12 - 1) < 0.03, distortions
    assert rates["bfloat16"] != rates["float32"] and abs(rates["bfloat16"] / rates["float32"] - 1) < 0.05, rates


class RandomImages(Source):
    shape = (1, 12, 12)
    distortion = SquaredError()

    def sample(self, n, seed, split="train"):
        return self.rng(seed, split).random((n, *self.shape))


def test_nerd_rcc_draws_image_candidates_in_bfloat16_and_decodes_them_exactly(tmp_path):
    """The bfloat16 candidates are the float32 generator's up to bfloat16 rounding (a few
    thousandths), not equal to them; a separate decoder regenerates the encoder's exactly."""
    from rdbench_plugins.rcc.codec import RCC
    from rdbench_plugins.rcc.learned import NerdChannel

    src = RandomImages()
    torch.manual_seed(0)
    config = generator_config(src.shape, channels=4)
    generator = build_generator(config)
    generator.init_affine(torch.full((144,), 0.5), 0.2 * torch.eye(144))
    blob = generator_bytes(generator, config, beta=-20.0)
    fast, exact = NerdChannel(blob, 3.0, src), NerdChannel(blob, 3.0, src, candidate_dtype="float32")
    assert fast.candidate_dtype == "bfloat16" and fast.details()["candidate_dtype"] == "bfloat16"
    y16, y32 = (c.sample(np.random.default_rng(5), 512) for c in (fast, exact))
    assert y16.dtype == np.float32 and 0 < np.abs(y16 - y32).max() < 0.01
    with pytest.raises(ValueError, match="candidate_dtype must be one of float32, bfloat16"):
        NerdChannel(blob, 3.0, src, candidate_dtype="float16")

    path = tmp_path / "generator.pt"
    path.write_bytes(blob)
    settings = dict(method="orc", channel="nerd", n_candidates=256, generator=str(path), generator_rate_bits=3.0)
    encoder, decoder = (RCC(**settings) for _ in range(2))
    for codec in (encoder, decoder):
        codec.fit(src, Target.parse("R=3"), 3)
    assert encoder.details()["candidate_dtype"] == "bfloat16"
    x = src.sample(20, 0, "test")
    selections = [encoder.search(xi, n) for n, xi in enumerate(x)]
    messages = [encoder.encode(xi) for xi in x]
    for message, selection in zip(messages, selections):
        assert np.array_equal(decoder.decode(message), fast.reproduce(selection.candidate))
