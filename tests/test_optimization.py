"""The shared training loop's Adam: one flat buffer per group, torch's update rule."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rdbench_plugins._optimization import adam  # noqa: E402


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def _train(model: torch.nn.Module, optimizer, zero) -> None:
    x = torch.linspace(-1, 1, 48).reshape(16, 3)
    for _ in range(25):
        zero()
        ((model(x) - x[:, :2].sin()) ** 2).mean().backward()
        optimizer.step()


def test_flat_adam_follows_torch_adam_with_per_group_learning_rates():
    """Same trajectory as torch.optim.Adam (to float32 rounding) with two parameter groups of
    different learning rates; a wrong offset, a lost gradient view or an ignored group lr
    would move the parameters elsewhere."""
    ours, theirs = _model(0), _model(0)
    flat = adam([{"params": ours[0].parameters()}, {"params": ours[2].parameters(), "lr": 0.05}], lr=0.01)
    reference = torch.optim.Adam(
        [{"params": theirs[0].parameters()}, {"params": theirs[2].parameters(), "lr": 0.05}], lr=0.01
    )
    _train(ours, flat, flat.zero_grad)
    _train(theirs, reference, lambda: reference.zero_grad(set_to_none=True))
    moved = max(float((a - b).detach().abs().max()) for a, b in zip(ours.parameters(), _model(0).parameters()))
    assert moved > 0.05  # training really moved the parameters
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_flat_adam_refuses_a_group_of_mixed_dtypes():
    """One flat buffer per group: float32 and float64 parameters in one group would be cast
    silently by the concatenation, so the group is refused with a message naming the fix."""
    mixed = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))]
    with pytest.raises(ValueError, match="mixes dtypes or devices"):
        adam(mixed, lr=0.1)
