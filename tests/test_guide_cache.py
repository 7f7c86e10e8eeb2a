"""Reuse of a sketch's latent and guide when only the hints change (``guide_cache.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import draw_face
from sketch2anime.guide_cache import GuideCache
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.testing import tiny_pipeline

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_pipeline(tmp_path_factory.mktemp("guide") / "model", channels=16, bank_size=20, projection_k=4,
                         encoded_bank=True)


def _count_encodes(pipe: Sketch2AnimePipeline) -> list[int]:
    calls = [0]
    pipe.autoencoder.encoder.register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    return calls


def _inputs(pipe: Sketch2AnimePipeline, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    sketch, _, _ = pipe.prepare(draw_face(64, seed))
    hint = torch.zeros(1, 4, pipe.hint_size, pipe.hint_size)
    hint[:, :3, 4:8, 4:8] = torch.tensor([0.8, -0.5, 0.2])[:, None, None]
    hint[:, 3, 4:8, 4:8] = 1.0
    return sketch, hint


def test_a_hint_change_reuses_the_guide_and_gives_the_uncached_picture(folder: Path) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(folder, device="cpu")
    fresh = Sketch2AnimePipeline.from_pretrained(folder, device="cpu")
    fresh.guide_cache = GuideCache(entries=0)  # never keeps anything: the reference
    encodes = _count_encodes(pipe)
    sketch, hint = _inputs(pipe, 1)
    first = pipe.generate_tensors(sketch, None, projection=0.6)
    second = pipe.generate_tensors(sketch, hint, projection=0.6)
    assert encodes[0] == 1 and pipe.guide_cache.hits == 1  # the hint stroke did not run the autoencoder
    assert not torch.equal(first["image"], second["image"])  # the hint still counts
    reference = fresh.generate_tensors(sketch, hint, projection=0.6)
    assert torch.equal(second["image"], reference["image"])
    assert torch.equal(second["projected_sketch"], reference["projected_sketch"])


def test_another_sketch_or_strength_or_precision_is_computed_again(folder: Path) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(folder, device="cpu")
    encodes = _count_encodes(pipe)
    sketch, _ = _inputs(pipe, 1)
    other, _ = _inputs(pipe, 2)
    low = pipe.generate_tensors(sketch, projection=0.0)["projected_sketch"]
    high = pipe.generate_tensors(sketch, projection=1.0)["projected_sketch"]
    assert encodes[0] == 2 and not torch.equal(low, high)
    pipe.generate_tensors(other, projection=1.0)
    assert encodes[0] == 3
    pipe.set_precision("bf16")
    assert len(pipe.guide_cache) == 0
    pipe.generate_tensors(sketch, projection=1.0)
    assert encodes[0] == 4


def test_what_the_caller_gets_is_a_copy(folder: Path) -> None:
    pipe = Sketch2AnimePipeline.from_pretrained(folder, device="cpu")
    sketch, _ = _inputs(pipe, 3)
    first = pipe.generate_tensors(sketch, projection=0.5)
    kept = first["projected_sketch"].clone()
    with torch.inference_mode():  # (outside it torch refuses to write into these tensors at all)
        first["projected_sketch"].fill_(0.0)  # a caller drawing on what it was given
    again = pipe.generate_tensors(sketch, projection=0.5)
    assert pipe.guide_cache.hits == 1
    assert torch.equal(again["projected_sketch"], kept)


def test_the_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    cache = GuideCache(entries=2)
    keys = [cache.key(torch.full((1, 1, 8, 8), float(i)), 0.5, 4, 1e-3, "fp32") for i in range(3)]
    for i, key in enumerate(keys[:2]):
        cache.put(key, torch.full((1, 4), float(i)), torch.zeros(1, 1, 8, 8))
    assert cache.get(keys[0]) is not None  # now the most recent
    cache.put(keys[2], torch.zeros(1, 4), torch.zeros(1, 1, 8, 8))
    assert len(cache) == 2 and cache.get(keys[1]) is None and cache.get(keys[0]) is not None
    assert cache.key(torch.zeros(1, 1, 8, 8), 0.5, 4, 1e-3, "fp32") != cache.key(torch.zeros(1, 1, 8, 8), 0.5, 4,
                                                                                 1e-3, "bf16")
    with pytest.raises(ValueError, match="entries"):
        GuideCache(entries=-1)
