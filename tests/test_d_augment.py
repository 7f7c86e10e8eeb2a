"""DiffAugment for the conditional discriminator: shifts keep picture, sketch and hint aligned;
cutout blanks the picture only; the transforms pass gradients; bad settings are refused."""

from __future__ import annotations

import pytest
import torch

from sketch2anime.config import ConfigError
from sketch2anime.training.d_augment import DAugmentConfig, DAugmentDraw, apply, augment, draw

SIZE, CELL = 32, 4


def _marked_batch(n: int = 6):
    """Pictures, sketches and hints with one marked hint cell each: a picture block of value 1 and a
    black sketch block exactly under a hint dot, everything else plain."""
    image = torch.full((n, 3, SIZE, SIZE), -0.5)
    sketch = torch.ones(n, 1, SIZE, SIZE)
    hint = torch.zeros(n, 4, SIZE // CELL, SIZE // CELL)
    for i in range(n):
        cy, cx = 2 + i % 3, 3 + i % 2
        image[i, :, cy * CELL:(cy + 1) * CELL, cx * CELL:(cx + 1) * CELL] = 1.0
        sketch[i, :, cy * CELL:(cy + 1) * CELL, cx * CELL:(cx + 1) * CELL] = -1.0
        hint[i, :, cy, cx] = torch.tensor([1.0, 1.0, 1.0, 1.0])
    return image, sketch, hint


def _block(x: torch.Tensor, value: float) -> set[tuple[int, int]]:
    return {tuple(p) for p in (x == value).nonzero()[:, -2:].tolist()}


def test_a_shift_moves_picture_sketch_and_hint_together_in_whole_cells() -> None:
    image, sketch, hint = _marked_batch()
    config = DAugmentConfig(policy=("translation",), translation=0.25)
    generator = torch.Generator().manual_seed(3)
    params = draw(config, image.shape[0], SIZE, CELL, generator)
    assert params.shifts is not None and params.shifts.abs().max() <= int(0.25 * SIZE) // CELL
    assert params.shifts.abs().sum() > 0  # the seed moves at least one picture (else this tests nothing)
    out_image, out_sketch, out_hint = apply(params, image, sketch, hint, CELL)
    for i, (dy, dx) in enumerate(params.shifts.tolist()):
        cy, cx = 2 + i % 3, 3 + i % 2
        want = {(y + dy * CELL, x + dx * CELL) for y in range(cy * CELL, (cy + 1) * CELL)
                for x in range(cx * CELL, (cx + 1) * CELL)}
        assert _block(out_image[i, 0], 1.0) == want
        assert _block(out_sketch[i, 0], -1.0) == want  # the ink moved with the picture
        assert _block(out_hint[i, 3], 1.0) == {(cy + dy, cx + dx)}  # and the hint dot with both


def test_a_shift_brings_in_blank_picture_paper_and_no_hint() -> None:
    image, sketch, hint = torch.full((1, 3, SIZE, SIZE), 0.7), -torch.ones(1, 1, SIZE, SIZE), torch.ones(1, 4, 8, 8)
    params = DAugmentDraw(shifts=torch.tensor([[1, -2]]), boxes=None)
    out_image, out_sketch, out_hint = apply(params, image, sketch, hint, CELL)
    assert torch.all(out_image[0, :, :CELL] == 0) and torch.all(out_image[0, :, CELL:, :SIZE - 2 * CELL] == 0.7)
    assert torch.all(out_image[0, :, :, SIZE - 2 * CELL:] == 0)  # moved left: the right edge is new
    assert torch.all(out_sketch[0, :, :CELL] == 1.0)  # paper, not ink
    assert torch.all(out_hint[0, :, 0] == 0) and torch.all(out_hint[0, :, 1:, :6] == 1)


def test_cutout_blanks_one_square_of_the_picture_and_leaves_the_conditions() -> None:
    image, sketch, hint = _marked_batch(4)
    config = DAugmentConfig(policy=("cutout",), cutout=0.25)
    out_image, out_sketch, out_hint = augment(config, image, sketch, hint, CELL, torch.Generator().manual_seed(0))
    side = int(0.25 * SIZE)
    for i in range(4):
        blank = (out_image[i] == 0).all(dim=0)
        rows, cols = blank.nonzero(as_tuple=True)
        assert int(blank.sum()) == side * side
        assert int(rows.max() - rows.min()) + 1 == side and int(cols.max() - cols.min()) + 1 == side
        assert torch.equal(out_image[i][:, ~blank], image[i][:, ~blank])
    assert torch.equal(out_sketch, sketch) and torch.equal(out_hint, hint)


def test_the_transforms_pass_the_generators_gradient() -> None:
    image = torch.rand(2, 3, SIZE, SIZE, requires_grad=True)
    config = DAugmentConfig(policy=("translation", "cutout"))
    out, _, _ = augment(config, image, None, None, CELL, torch.Generator().manual_seed(1))
    out.sum().backward()
    grad = image.grad
    # Pixels that D sees get gradient 1; those shifted out or cut away get none.
    assert set(grad.unique().tolist()) == {0.0, 1.0}
    assert 0.3 < float(grad.mean()) < 1.0


def test_an_empty_policy_is_the_identity() -> None:
    image, sketch, hint = _marked_batch(2)
    out = augment(DAugmentConfig(), image, sketch, hint, CELL, torch.Generator().manual_seed(0))
    assert out[0] is image and out[1] is sketch and out[2] is hint


def test_a_draw_for_another_batch_is_refused() -> None:
    params = draw(DAugmentConfig(policy=("translation",)), 3, SIZE, CELL, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="drawn for 3 pictures"):
        apply(params, torch.zeros(2, 3, SIZE, SIZE), None, None, CELL)


@pytest.mark.parametrize("changes, message", [
    ({"policy": ("colour",)}, "unknown transform"),
    ({"policy": ("cutout", "cutout")}, "twice"),
    ({"translation": 0.6}, "translation"),
    ({"cutout": 1.0}, "cutout"),
])
def test_bad_settings_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DAugmentConfig(**changes)


# ---- inside the GAN updates -------------------------------------------------------------------

class _RecordingD(torch.nn.Module):
    """A discriminator that keeps what it was shown (logits: the mean picture value)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, image, sketch=None, hint=None):
        self.seen.append((image.detach().clone(), sketch.clone(), hint.clone()))
        logits = self.weight * image.mean(dim=(1, 2, 3))[:, None, None, None]
        return logits, [self.weight * image]


def _update(policy: tuple[str, ...]):
    import contextlib
    from types import SimpleNamespace

    from sketch2anime.training.config import TrainConfig
    from sketch2anime.training.gan_common import ConditionalGANUpdate

    update = ConditionalGANUpdate()
    update.D = update.d_net = _RecordingD()
    update.perceptual, update.ema = None, None
    update.engine = SimpleNamespace(channels_last=False, autocast=contextlib.nullcontext)
    update.config = SimpleNamespace(train=TrainConfig(d_augment=DAugmentConfig(policy=policy, translation=0.25)))
    update.generator = torch.Generator().manual_seed(5)
    update.G = torch.nn.Linear(1, 1)
    update.opt_g = torch.optim.SGD(update.G.parameters(), lr=0.0)
    update.opt_d = torch.optim.SGD(update.D.parameters(), lr=0.0)
    return update


def test_the_generator_update_shows_d_real_and_fake_through_the_same_draw() -> None:
    image, sketch, hint = _marked_batch(4)
    update = _update(("translation", "cutout"))
    fake = image.clone().requires_grad_(True)  # a perfect fake: feature matching must find nothing
    losses = update.generator_update(image, fake, sketch, hint, hint, step=0)
    (fake_seen, sketch_seen, hint_seen), (real_seen, _, _) = update.D.seen
    assert torch.equal(fake_seen, real_seen)
    assert float(losses["fm"]) == 0.0
    assert not torch.equal(fake_seen, image)  # and what D saw was augmented
    moved = [i for i in range(4) if not torch.equal(hint_seen[i], hint[i])]
    assert moved
    for i in range(4):  # the ink still lies under the marked block wherever the cutout left it
        ink, block = _block(sketch_seen[i, 0], -1.0), _block(real_seen[i, 0], 1.0)
        assert len(ink) == CELL * CELL and block <= ink and ink - block <= _cut(real_seen[i])


def _cut(picture: torch.Tensor) -> set[tuple[int, int]]:
    return _block(picture.abs().sum(dim=0), 0.0)


def test_the_discriminator_update_augments_real_and_fake_alike_and_the_plain_one_does_not() -> None:
    image, sketch, hint = _marked_batch(4)
    plain = _update(())
    plain.discriminator_update(image, image.clone(), sketch, hint, step=1)
    assert torch.equal(plain.D.seen[0][0], torch.cat([image, image]))
    augmented = _update(("cutout",))
    augmented.discriminator_update(image, image.clone(), sketch, hint, step=1)
    seen = augmented.D.seen[0][0]
    blanks = (seen == 0).all(dim=1).flatten(1).sum(dim=1)  # one square per picture, reals and fakes
    assert torch.all(blanks == int(0.5 * SIZE) ** 2)
