"""The inference-time cache of decoded parts gives the per-part guide's exact result and skips unchanged parts."""

from __future__ import annotations

import pytest
import torch

from sketch2anime.models.autoencoder import AutoencoderConfig, SketchAutoencoder
from sketch2anime.models.part_guide import PartGuide, PartLayout, guide_with_parts
from sketch2anime.models.projection import LatentBank
from sketch2anime.part_cache import PartCache

pytestmark = pytest.mark.usefixtures("one_thread")

LATENT = 16


@pytest.fixture()
def parts_and_banks() -> tuple[PartGuide, dict[str, LatentBank]]:
    torch.manual_seed(0)
    ae = SketchAutoencoder(AutoencoderConfig(image_size=32, latent_dim=LATENT, base_channels=4, max_channels=16))
    parts = PartGuide(PartLayout(), ae).eval()
    banks = {name: LatentBank(torch.randn(20, LATENT), [f"f{i}" for i in range(20)]) for name in parts.layout.names}
    return parts, banks


def _sketches(n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand(n, 1, 128, 128, generator=g) > 0.9).float() * -2 + 1  # sparse ink on white


class _CountingEncode:
    """Counts the crops the part autoencoder encodes."""

    def __init__(self, parts: PartGuide) -> None:
        self.crops = 0
        self._encode = parts.autoencoder.encode
        parts.autoencoder.encode = self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.crops += x.shape[0]
        return self._encode(x)


@pytest.mark.parametrize("strength", [0.0, 0.6, 1.0])
def test_cached_guide_equals_the_uncached_one(parts_and_banks, strength: float) -> None:
    parts, banks = parts_and_banks
    sketch, guide = _sketches(), torch.zeros(2, 1, 128, 128)
    cache = PartCache()
    with torch.inference_mode():
        want = guide_with_parts(parts, banks, sketch, guide, strength, k=5, reg=1e-3)
        first = parts.paste(guide, cache.decoded(parts, banks, sketch, strength, 5, 1e-3))
        again = parts.paste(guide, cache.decoded(parts, banks, sketch, strength, 5, 1e-3))
    torch.testing.assert_close(first, want, atol=1e-5, rtol=0)
    assert torch.equal(again, first)
    assert (cache.misses, cache.hits) == (6, 6)  # 2 sketches x 3 parts, then all reused


def test_only_the_changed_part_is_recomputed(parts_and_banks) -> None:
    parts, banks = parts_and_banks
    counter = _CountingEncode(parts)
    cache = PartCache()
    sketch = _sketches(1)
    with torch.inference_mode():
        cache.decoded(parts, banks, sketch, 0.5, 5, 1e-3)
        assert counter.crops == 3
        outside = sketch.clone()
        outside[..., 0:10, 0:10] = -1  # a stroke in a corner, no part box there
        cache.decoded(parts, banks, outside, 0.5, 5, 1e-3)
        assert counter.crops == 3
        mouth = parts.layout.boxes[parts.layout.names.index("mouth")]
        x0, y0, w, h = mouth.pixels(128)
        in_mouth = outside.clone()
        in_mouth[..., y0 + h // 2, x0:x0 + w] = -1  # a line across the mouth
        decoded = cache.decoded(parts, banks, in_mouth, 0.5, 5, 1e-3)
        assert counter.crops == 4
        cache.decoded(parts, banks, in_mouth, 1.0, 5, 1e-3)  # another strength: every part again
        assert counter.crops == 7
    with torch.inference_mode():
        fresh = PartCache().decoded(parts, banks, in_mouth, 0.5, 5, 1e-3)
    for name in parts.layout.names:
        torch.testing.assert_close(decoded[name], fresh[name], atol=1e-5, rtol=0)


def test_cache_is_bounded(parts_and_banks) -> None:
    parts, banks = parts_and_banks
    cache = PartCache(entries=4)
    with torch.inference_mode():
        for strength in (0.1, 0.2, 0.3):
            cache.decoded(parts, banks, _sketches(1), strength, 5, 1e-3)
    assert len(cache) == 4
    with pytest.raises(ValueError, match="entries"):
        PartCache(entries=-1)
