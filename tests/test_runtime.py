"""Training precision chosen by measurement; EMA ramp-up."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sketch2anime import runtime
from sketch2anime.training.schedule import EMA


@pytest.fixture(autouse=True)
def fresh_cache():
    runtime.fastest_cpu_precision.cache_clear()
    yield
    runtime.fastest_cpu_precision.cache_clear()


def test_no_bf16_instructions_means_fp32_without_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(runtime, "training_step_seconds", lambda *a, **k: pytest.fail("must not measure"))
    assert runtime.fastest_cpu_precision() == "fp32"


@pytest.mark.parametrize("fp32, bf16, expected", [(1.0, 0.4, "bf16"), (1.0, 0.95, "fp32"), (1.0, 2.0, "fp32")])
def test_bf16_only_when_measured_faster(monkeypatch: pytest.MonkeyPatch, fp32: float, bf16: float, expected: str) -> None:
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx512_bf16"})
    monkeypatch.setattr(runtime, "training_step_seconds", lambda precision, **k: fp32 if precision == "fp32" else bf16)
    assert runtime.fastest_cpu_precision() == expected


def test_step_timer_runs_both_precisions(one_thread) -> None:
    for precision in ("fp32", "bf16"):
        assert runtime.training_step_seconds(precision, steps=1, size=16, batch=1) > 0
    with pytest.raises(ValueError):
        runtime.training_step_seconds("fp16")


def test_ema_ramp_follows_the_model_early_and_averages_late() -> None:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    ema = EMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=0)  # decay min(0.999, 1/10): the average moves 90 % of the way
    assert torch.allclose(ema.model.weight, torch.full((2, 2), 0.9))
    late = EMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(2.0)
    late.update(model, step=100_000)  # ramp done: the configured decay
    assert torch.allclose(late.model.weight, torch.full((2, 2), 1.001))
    fixed = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(3.0)
    fixed.update(model)  # no step: plain decay, as the older stages call it
    assert torch.allclose(fixed.model.weight, torch.full((2, 2), 2.5))
