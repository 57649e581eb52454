"""The framework's one place per concept: settings checks, typed records, distortion forms,
units and the ``gaussian`` feature as a protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from rdbench import AbsoluteError, Hamming, Source, SquaredError
from rdbench.distortion import _per_realization
from rdbench.gaussian import WaterFilling
from rdbench.interfaces import GaussianLaw
from rdbench.records import CodecRecord, EstimatorRecord, SourceRecord
from rdbench.registry import get_registry
from rdbench.settings import choice, number, validate, whole
from rdbench.targets import Target
from rdbench.units import LN2, LOG2E, to_bits, to_nats

# -- settings -------------------------------------------------------------------------

DEFAULTS = {"steps": 100, "lr": 1e-3, "mode": "fast", "cap": None, "flag": False}
CHECKS = {"steps": whole(minimum=1), "lr": number(above=0), "mode": choice("fast", "exact"), "cap": whole(minimum=2)}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"stepz": 3}, "m has no setting 'stepz'; did you mean 'steps'?"),
        ({"steps": 2.5}, "m.steps=2.5: expected a whole number (default 100)"),
        ({"steps": True}, "m.steps=true: expected a whole number (default 100)"),
        ({"steps": 0}, "m.steps=0: must be a whole number >= 1"),
        ({"lr": 0}, "m.lr=0: must be a finite number > 0"),
        ({"lr": "fast"}, 'm.lr="fast": expected a number (default 0.001)'),
        ({"mode": "slow"}, 'm.mode="slow": must be one of "fast", "exact"'),
        ({"cap": 1}, "m.cap=1: must be a whole number >= 2 or null"),
        ({"flag": 1}, "m.flag=1: expected true or false (default false)"),
    ],
)
def test_the_validator_names_the_setting_and_what_it_accepts(values, message):
    with pytest.raises(ValueError) as info:
        validate("m", DEFAULTS, CHECKS, values)
    assert str(info.value) == message


def test_the_validator_accepts_good_values_and_makes_whole_floats_ints():
    checked = validate("m", DEFAULTS, CHECKS, {"steps": 1e4, "lr": 1, "cap": None, "mode": "exact"})
    assert checked == {"steps": 10000, "lr": 1, "cap": None, "mode": "exact"}
    assert isinstance(checked["steps"], int)


def test_records_validate_their_checks_and_every_profile():
    EstimatorRecord("x", "x", "m:f", defaults=DEFAULTS, checks=CHECKS).validate()
    with pytest.raises(ValueError, match="checks names speed, which defaults lacks"):
        EstimatorRecord("x", "x", "m:f", defaults=DEFAULTS, checks={"speed": whole()}).validate()
    with pytest.raises(ValueError, match=r"the smoke profile's settings are invalid: x.steps=0: must be"):
        EstimatorRecord("x", "x", "m:f", defaults=DEFAULTS, checks=CHECKS, profiles={"smoke": {"steps": 0}}).validate()


def test_every_built_in_record_checks_its_numeric_settings():
    """Each numeric setting of a built-in record has a check, so a nonsense value fails at plan time."""
    registry = get_registry()
    unchecked = []
    for kind in ("source", "estimator", "codec"):
        for entry in registry.entries(kind).values():
            record = entry.record
            for key, default in record.defaults.items():
                numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
                if (numeric or default is None) and key not in record.checks and key not in record.file_settings:
                    unchecked.append(f"{record.name}.{key}")
    assert not unchecked, unchecked


def test_a_bad_set_value_fails_at_plan_time_in_one_line(tmp_path):
    from click.testing import CliRunner

    from rdbench.cli import main

    args = [
        "run",
        "--sources",
        "gaussian",
        "--estimators",
        "blahut-arimoto",
        "--codecs",
        "none",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(main, [*args, "--set", "blahut-arimoto.tol_bits=-1"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "blahut-arimoto.tol_bits=-1: must be a finite number >= 0" in result.output
    assert not (tmp_path / "cells").exists() or not list((tmp_path / "cells").iterdir())


# -- records per kind -----------------------------------------------------------------


def test_a_field_of_another_kind_is_an_error_where_the_record_is_written():
    with pytest.raises(TypeError, match="targets"):
        EstimatorRecord("x", "x", "m:f", targets={"default": ("R=1",)})
    with pytest.raises(TypeError, match="requires"):
        SourceRecord("x", "x", "m:f", requires=("gaussian",))
    with pytest.raises(TypeError, match="data"):
        CodecRecord("x", "x", "m:f", data=None)


def test_a_hook_returning_the_wrong_record_type_is_reported(plugin_site):
    code = (
        "from rdbench import CodecRecord, hookimpl\n@hookimpl\ndef rdbench_sources():\n"
        "    return [CodecRecord('not-a-source', 'x', 'm:f')]\n"
    )
    plugin_site.add("rdbench-wrong-kind", {"wrong": "toy_wrong"}, {"toy_wrong": code})
    registry = get_registry(refresh=True)
    (info,) = [p for p in registry.problems if p.name == "wrong"]
    assert "expected SourceRecord, got CodecRecord" in info.error
    assert "not-a-source" not in registry.entries("source")


# -- distortion measures --------------------------------------------------------------


@pytest.mark.parametrize("measure", [SquaredError(), AbsoluteError()])
def test_torch_forms_equal_the_numpy_forms(measure):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 2, 3)), rng.normal(size=(7, 2, 3))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    assert np.allclose(measure.torch_elementwise(tx, ty[:5]).numpy(), measure(x, y[:5]), rtol=1e-12)
    pairwise = measure.torch_pairwise(tx.flatten(1), ty.flatten(1)).numpy()
    assert np.allclose(pairwise, measure.pairwise(x.reshape(5, -1), y.reshape(7, -1)), rtol=1e-10, atol=1e-12)
    scalar = measure.torch_elementwise(tx[:, 0, 0], ty[:5, 0, 0])  # a scalar source's (N,) batch
    assert scalar.shape == (5,) and np.allclose(
        _per_realization(tx[:, 0, 0] - ty[:5, 0, 0]).numpy(), x[:, 0, 0] - y[:5, 0, 0]
    )


def test_hamming_has_no_torch_form_and_says_so():
    with pytest.raises(ValueError, match="nerd needs a distortion differentiable"):
        Hamming().require_differentiable("nerd")
    with pytest.raises(ValueError, match="no high-rate constants"):
        Hamming().high_rate_dimensions(3)


def test_high_rate_constants_match_their_closed_forms():
    """Uniform quantizer: D = step^2 / 12 (squared error), step / 4 (absolute error) per
    component; the step of slope lambda bits is sqrt(6 log2(e) / lambda) and 4 log2(e) / lambda;
    the Shannon-lower-bound slope is k / D with k = components / 2 and components."""
    se, ae = SquaredError(), AbsoluteError()
    assert se.quantizer_distortion(0.3) == pytest.approx(0.3**2 / 12)
    assert ae.quantizer_distortion(0.3) == pytest.approx(0.3 / 4)
    assert se.quantizer_step(2.0) == pytest.approx(math.sqrt(6 * LOG2E / 2.0))
    assert ae.quantizer_step(2.0) == pytest.approx(4 * LOG2E / 2.0)
    assert (se.high_rate_dimensions(10), ae.high_rate_dimensions(10)) == (5.0, 10.0)
    # the quantizer's high-rate slope log2(e) / (p D) at its step is the slope asked for
    for measure, p in ((se, 2), (ae, 1)):
        d = measure.quantizer_distortion(measure.quantizer_step(3.0))
        assert LOG2E / (p * d) == pytest.approx(3.0)


# -- units and reverse water-filling --------------------------------------------------


def test_units_convert_both_ways():
    assert LN2 == math.log(2) and LOG2E == pytest.approx(math.log2(math.e))
    assert to_bits(to_nats(3.7)) == pytest.approx(3.7) and to_nats(1.0) == LN2


def test_water_filling_against_a_brute_force_solution():
    variances = np.array([4.0, 1.0, 0.25, 0.01])
    filling = WaterFilling(variances)
    for d in (0.05, 0.4, 1.5, 5.0):
        theta = brentq(lambda t, d=d: np.minimum(t, variances).sum() - d, 1e-12, variances.max(), xtol=1e-15)
        rate = 0.5 * np.log2(np.maximum(variances / theta, 1.0)).sum()
        assert filling.water_level(d) == pytest.approx(theta, rel=1e-9)
        assert filling.rate_bits(d) == pytest.approx(rate, rel=1e-9)
        assert filling.slope_bits(d) == pytest.approx(LOG2E / (2 * theta), rel=1e-9)
        assert filling.distortion_at_rate(filling.rate_bits(d)) == pytest.approx(d, rel=1e-9)
        assert filling.distortion_at_slope(filling.slope_bits(d)) == pytest.approx(d, rel=1e-9)
    assert filling.rate_bits(filling.d_max) == 0.0 and filling.slope_bits(2 * filling.d_max) == 0.0


# -- the gaussian feature is a protocol ------------------------------------------------


class ThirdPartyGaussian(Source):
    """A Gaussian from another package: no rdbench_plugins class, only the GaussianLaw protocol."""

    distortion = SquaredError()
    shape = (2,)
    variances = np.array([2.0, 0.5])
    rotation = np.array([[math.cos(0.3), -math.sin(0.3)], [math.sin(0.3), math.cos(0.3)]])

    def sample(self, n, seed, split="train"):
        z = self.rng(seed, split).normal(size=(n, 2)) * np.sqrt(self.variances)
        return z @ self.rotation.T


def test_the_exact_channel_runs_on_any_source_with_the_gaussian_law():
    from rdbench_plugins.rcc.channels import ExactGaussianChannel

    source = ThirdPartyGaussian()
    assert isinstance(source, GaussianLaw)
    channel = ExactGaussianChannel(source, Target.parse("D=1.0").resolve(source))
    filling = WaterFilling(source.variances)
    assert channel.rate_bits == pytest.approx(filling.rate_bits(1.0), rel=1e-12)
    assert channel.beta == pytest.approx(-1 / (2 * filling.water_level(1.0)), rel=1e-12)
    with pytest.raises(ValueError, match="needs a source with the gaussian feature"):
        ExactGaussianChannel(get_registry().get("source", "laplace").create({}), Target.parse("D=0.5"))


# -- the codec protocol ----------------------------------------------------------------


def test_codecs_are_decoded_by_a_separate_instance():
    """A decoder that reads the encoder's state instead of the message cannot pass: the
    protocol decodes with a copy taken before encoding."""
    from rdbench import Codec
    from rdbench.evaluation import evaluate_codec

    class Cheat(Codec):
        coding = "stream"

        def fit(self, source, target, seed):
            self.seen = None

        def encode(self, x):
            self.seen = np.asarray(x)
            return b"\x00"

        def decode(self, message):
            if self.seen is None:
                raise ValueError("nothing to decode from one byte")
            return self.seen

    source = get_registry().get("source", "gaussian").create({})
    with pytest.raises(ValueError, match="nothing to decode"):
        evaluate_codec(Cheat(), source, Target.parse("R=1").resolve(source), seed=0, n_test=10)
