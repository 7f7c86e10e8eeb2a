"""The per-part guide (models/part_guide.py): crops, pasting, per-part projection, its training and its folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import draw_face
from sketch2anime.checkpoint import CheckpointError
from sketch2anime.config import ConfigError
from sketch2anime.data.prepare import PrepareConfig, prepare_dataset
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.models.autoencoder import AutoencoderConfig, SketchAutoencoder
from sketch2anime.models.latent_bank import LatentBank
from sketch2anime.models.part_guide import (
    FACE_PARTS,
    PartBox,
    PartGuide,
    PartLayout,
    crop_part,
    feather_mask,
    guide_with_parts,
    paste_part,
)
from sketch2anime.pipeline_format import part_bank_stem, read_parts_folder, write_parts_folder
from sketch2anime.training.autoencoder_stage import autoencoder_config, part_crops
from sketch2anime.training.config import load_experiment
from sketch2anime.training.run import train_experiment

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_parts(seed: int = 0, latent: int = 16) -> PartGuide:
    torch.manual_seed(seed)
    ae = SketchAutoencoder(AutoencoderConfig(image_size=32, latent_dim=latent, base_channels=4, max_channels=16))
    return PartGuide(PartLayout(), ae).eval()


# ---- geometry ---------------------------------------------------------------------------------

def test_box_pixels_stay_inside_and_match_fractions() -> None:
    box = PartBox("eye", 0.355, 0.42, 0.29, 0.22)
    x0, y0, w, h = box.pixels(128)
    assert (w, h) == (37, 28)
    assert 0 <= x0 and x0 + w <= 128 and 0 <= y0 and y0 + h <= 128
    assert abs((x0 + w / 2) / 128 - 0.355) < 0.01 and abs((y0 + h / 2) / 128 - 0.42) < 0.01


@pytest.mark.parametrize("bad", [dict(cx=0.1, w=0.3), dict(w=0.0), dict(name="a/b")])
def test_box_rejects_boxes_outside_the_image(bad: dict) -> None:
    values = dict(name="eye", cx=0.5, cy=0.5, w=0.2, h=0.2) | bad
    with pytest.raises(ConfigError):
        PartBox(**values)


def test_layout_round_trips_through_its_dict_and_rejects_duplicates() -> None:
    layout = PartLayout()
    assert PartLayout.from_dict(json.loads(json.dumps(layout.to_dict()))) == layout
    with pytest.raises(ConfigError, match="unique"):
        PartLayout(boxes=(FACE_PARTS[0], FACE_PARTS[0]))
    with pytest.raises(ConfigError, match="part_size"):
        PartLayout(part_size=48)


def test_crop_then_paste_puts_the_crop_back_where_it_came_from() -> None:
    # A box whose pixel size equals the part size: crop and paste are exact inverses.
    box = PartBox("eye", 0.25, 0.25, 0.25, 0.25, mirror=True)  # 32 px of 128, mirrored both ways
    image = torch.rand(2, 1, 128, 128) * 2 - 1
    crop = crop_part(image, box, 32)
    x0, y0, w, h = box.pixels(128)
    assert torch.allclose(crop, image[..., y0:y0 + h, x0:x0 + w].flip(-1))
    blank = torch.ones_like(image)
    pasted = paste_part(blank, crop, box, feather=0.0)
    assert torch.allclose(pasted[..., y0:y0 + h, x0:x0 + w], image[..., y0:y0 + h, x0:x0 + w], atol=1e-6)
    outside = torch.ones(128, 128, dtype=torch.bool)
    outside[y0:y0 + h, x0:x0 + w] = False
    assert torch.equal(pasted[..., outside], blank[..., outside])


def test_crop_shift_moves_the_window_and_keeps_it_inside() -> None:
    image = torch.arange(128.0).repeat(128, 1)[None, None] / 64 - 1  # value = column
    box = PartBox("eye", 0.25, 0.5, 0.25, 0.25)
    base, moved = crop_part(image, box, 32), crop_part(image, box, 32, shift=(4, 0))
    assert torch.allclose(moved - base, torch.full_like(base, 4 / 64))
    edge = crop_part(image, box, 32, shift=(-500, 0))  # clamped to the left border
    assert float(edge[0, 0, 0, 0]) == pytest.approx(-1.0)


def test_feather_mask_is_one_inside_and_fades_at_the_edges() -> None:
    mask = feather_mask(20, 40, 0.5)
    assert float(mask[10, 20]) == 1.0
    assert float(mask[0, 0]) < 0.1 and float(mask[10, 0]) < 0.1
    assert torch.all(mask[10, :20].diff() >= 0)  # rises towards the middle
    assert torch.equal(feather_mask(8, 8, 0.0), torch.ones(8, 8))


def test_part_crops_gives_one_crop_per_box_with_the_same_shift_for_each_tensor() -> None:
    clean = torch.rand(3, 1, 128, 128) * 2 - 1
    rough = clean.clone()
    layout = PartLayout()
    a, b = part_crops([clean, rough], layout, torch.Generator().manual_seed(1))
    assert a.shape == (3 * len(layout.boxes), 1, 32, 32)
    assert torch.equal(a, b)  # same shift for the clean and the rough sketch


# ---- the module -------------------------------------------------------------------------------

def test_render_changes_the_guide_only_inside_the_part_boxes() -> None:
    parts = _tiny_parts()
    sketch = torch.rand(2, 1, 128, 128) * 2 - 1
    guide = torch.zeros(2, 1, 128, 128)
    with torch.no_grad():
        out = parts.render(guide, parts.encode(sketch))
    inside = torch.zeros(128, 128, dtype=torch.bool)
    for box in parts.layout.boxes:
        x0, y0, w, h = box.pixels(128)
        inside[y0:y0 + h, x0:x0 + w] = True
    assert torch.equal(out[..., ~inside], guide[..., ~inside])
    assert float((out[..., inside] - guide[..., inside]).abs().mean()) > 0.01
    with pytest.raises(ValueError, match="missing"):
        parts.render(guide, {"left_eye": torch.zeros(2, 16)})


def test_part_guide_refuses_an_autoencoder_of_another_size() -> None:
    ae = SketchAutoencoder(AutoencoderConfig(image_size=64, latent_dim=8, base_channels=4, max_channels=8))
    with pytest.raises(ConfigError, match="32 px"):
        PartGuide(PartLayout(), ae)


def test_stronger_projection_moves_each_part_towards_its_bank() -> None:
    """t = 1 puts every part latent on the span of its bank's neighbours: the guide's parts become
    those of the bank's sketches (here: the bank is exactly one sketch's parts, k = 1)."""
    parts = _tiny_parts()
    g = torch.Generator().manual_seed(0)
    known = torch.rand(1, 1, 128, 128, generator=g) * 2 - 1
    user = torch.rand(1, 1, 128, 128, generator=g) * 2 - 1
    with torch.no_grad():
        banks = {name: LatentBank(z, ["known/detail"]) for name, z in parts.encode(known).items()}
        guide = torch.zeros(1, 1, 128, 128)
        target = parts.render(guide, parts.encode(known))
        distances = [float((guide_with_parts(parts, banks, user, guide, t, k=1) - target).abs().mean())
                     for t in (0.0, 0.5, 1.0)]
    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < 1e-4


# ---- training and the folder ------------------------------------------------------------------

@pytest.fixture(scope="module")
def part_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(dataset at 128 px, whole-face autoencoder run, part autoencoder run), all tiny."""
    torch.set_num_threads(1)
    data = {}
    for size in (64, 128):
        source = tmp_path_factory.mktemp(f"faces{size}")
        for i in range(8):
            draw_face(size, i).save(source / f"face_{i:02d}.png")
        data[size] = tmp_path_factory.mktemp("data") / f"tiny{size}"
        prepare_dataset(source, data[size], PrepareConfig(size=size, extractors=("detail", "xdog"), val_fraction=0.25,
                                                          workers=1), progress=False)
    runs = tmp_path_factory.mktemp("runs")
    train_experiment(load_experiment(CONFIGS / "test_autoencoder.toml", [
        f"data.root={json.dumps(str(data[64]))}", f"experiment.output_dir={json.dumps(str(runs / 'ae'))}",
        "train.steps=3"]))
    train_experiment(load_experiment(CONFIGS / "test_autoencoder.toml", [
        f"data.root={json.dumps(str(data[128]))}", f"experiment.output_dir={json.dumps(str(runs / 'parts'))}",
        "experiment.parts=true", "experiment.image_size=128", "autoencoder.image_size=32", "train.steps=3"]))
    return data[128], runs / "ae", runs / "parts"


def test_part_autoencoder_run_exports_a_parts_folder_without_banks(part_run) -> None:
    _, _, parts_run = part_run
    layout, autoencoder, banks = read_parts_folder(parts_run / "model", need_banks=False)
    assert layout == PartLayout() and autoencoder.config.image_size == 32 and banks == {}
    with pytest.raises(CheckpointError, match="latent bank of part"):
        read_parts_folder(parts_run / "model")


def test_part_autoencoder_needs_the_part_size() -> None:
    config = load_experiment(CONFIGS / "test_autoencoder.toml", ["experiment.parts=true", "autoencoder.image_size=64"])
    with pytest.raises(ConfigError, match="32 px parts"):
        autoencoder_config(config)


def test_guided_run_with_parts_ships_them_and_the_slider_reshapes_the_parts(part_run, tmp_path: Path) -> None:
    data, ae, parts_run = part_run
    out = tmp_path / "guided"
    train_experiment(load_experiment(CONFIGS / "test_guided.toml", [
        f"data.root={json.dumps(str(data))}", f"experiment.output_dir={json.dumps(str(out))}",
        f"experiment.autoencoder_dir={json.dumps(str(ae))}", f"experiment.parts_dir={json.dumps(str(parts_run))}",
        "train.steps=2"]))
    pipe = Sketch2AnimePipeline.from_pretrained(out / "model", device="cpu")
    assert pipe.parts is not None and set(pipe.part_banks) == set(PartLayout().names)
    bank_rows = len(pipe.bank)
    assert all(len(bank) == bank_rows and bank.ids == pipe.bank.ids for bank in pipe.part_banks.values())

    sketch = torch.ones(1, 1, 128, 128)
    sketch[..., 45:62, 30:58] = -1  # a scribbled "eye"
    near, far = (pipe.generate_tensors(sketch, projection=t)["projected_sketch"] for t in (0.0, 1.0))
    # The slider moves the guide inside the part boxes (the whole-face guide moves everywhere).
    box = PartLayout().boxes[0]
    x0, y0, w, h = box.pixels(128)
    assert float((near - far)[..., y0:y0 + h, x0:x0 + w].abs().mean()) > 1e-3

    saved = pipe.save_pretrained(tmp_path / "saved")
    again = Sketch2AnimePipeline.from_pretrained(saved, device="cpu")
    a = pipe.generate_tensors(sketch, projection=0.7)
    b = again.generate_tensors(sketch, projection=0.7)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["projected_sketch"], b["projected_sketch"])


def test_a_folder_with_a_damaged_part_bank_is_refused(part_run, tmp_path: Path) -> None:
    _, _, parts_run = part_run
    layout, autoencoder, _ = read_parts_folder(parts_run / "model", need_banks=False)
    banks = {name: LatentBank(torch.randn(3, autoencoder.config.latent_dim), ["a/x", "b/x", "c/x"])
             for name in layout.names}
    write_parts_folder(tmp_path, layout, autoencoder, banks)
    assert set(read_parts_folder(tmp_path)[2]) == set(layout.names)
    part_bank_stem(tmp_path, "mouth").with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError):
        read_parts_folder(tmp_path)
