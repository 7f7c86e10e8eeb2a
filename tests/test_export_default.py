"""scripts/export_default.py: a fine-tuned default model's card keeps the budget of the model it started from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import load_script


@pytest.fixture(scope="module")
def export_default():
    return load_script("export_default")


def _run(folder: Path, train: dict, init_generator: str = "") -> Path:
    folder.mkdir(parents=True)
    config = {"experiment": {"stage": "guided", "init_generator": init_generator}, "data": {"batch_size": 8, "root": "d"},
              "train": train}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


START_CARD = """# Model card

## Training budget and hardware

| stage | steps | batch | images seen | wall time | images/s (median) | threads |
|---|---|---|---|---|---|---|
| guided U-Net generator (stage 2) | 6000 | 8 | 48,000 | 2.48 h | 8.4 | 2 |

Hardware: a CPU.

| not | a | budget | row |
"""


def test_fine_tune_inherits_its_starting_models_budget_rows(export_default, tmp_path: Path) -> None:
    start = tmp_path / "shipped"
    start.mkdir()
    (start / "MODEL_CARD.md").write_text(START_CARD)
    run = _run(tmp_path / "ft", {"steps": 4400, "lr": 1e-4, "l1_weight": 60.0, "adversarial_weight": 0.4},
               init_generator=str(start))
    found, rows = export_default.inherited_budget_rows(run)
    assert found == start
    assert rows == ["| guided U-Net generator (stage 2) | 6000 | 8 | 48,000 | 2.48 h | 8.4 | 2 |"]
    note = export_default.fine_tune_note(run, start)
    for part in ("train.steps=4400", "train.lr=0.0001", "train.l1_weight=60.0", "train.adversarial_weight=0.4",
                 str(start)):
        assert part in note


def test_a_run_from_scratch_inherits_nothing(export_default, tmp_path: Path) -> None:
    assert export_default.inherited_budget_rows(_run(tmp_path / "scratch", {"steps": 10})) == (None, [])


def test_a_starting_model_without_a_card_is_refused(export_default, tmp_path: Path) -> None:
    run = _run(tmp_path / "ft", {"steps": 10}, init_generator=str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit, match="MODEL_CARD"):
        export_default.inherited_budget_rows(run)


def test_a_second_fine_tune_is_numbered_and_names_its_ssim_weight(export_default, tmp_path: Path) -> None:
    rows = ["| guided U-Net generator (stage 2) | 6000 | 8 | 48,000 | 2.48 h | 8.4 | 2 |",
            "| guided U-Net generator (stage 2), fine-tune | 4400 | 8 | 35,200 | 1.65 h | 6.2 | 2 |"]
    assert export_default.fine_tune_stage_suffix(rows[:1]) == ", fine-tune"
    assert export_default.fine_tune_stage_suffix(rows) == ", fine-tune 2"
    run = _run(tmp_path / "ft2", {"steps": 2400, "lr": 1e-4, "ssim_weight": 15.0, "perceptual_weight": 0.0})
    note = export_default.fine_tune_note(run, tmp_path)
    assert "train.ssim_weight=15.0" in note
    plain = _run(tmp_path / "ft1", {"steps": 2400, "lr": 1e-4, "ssim_weight": 0.0})
    assert "ssim_weight" not in export_default.fine_tune_note(plain, tmp_path)


def test_the_note_names_a_multi_scale_discriminator_and_only_that(export_default, tmp_path: Path) -> None:
    run = _run(tmp_path / "ms", {"steps": 2400, "lr": 5e-5})
    config = json.loads((run / "config.json").read_text())
    assert "discriminator.scales" not in export_default.fine_tune_note(run, tmp_path)
    config["discriminator"] = {"scales": 1}
    (run / "config.json").write_text(json.dumps(config))
    assert "discriminator.scales" not in export_default.fine_tune_note(run, tmp_path)
    config["discriminator"] = {"scales": 2}
    (run / "config.json").write_text(json.dumps(config))
    assert "`discriminator.scales=2`" in export_default.fine_tune_note(run, tmp_path)


def test_the_note_names_every_discriminator_change_and_diffaugment(export_default, tmp_path: Path) -> None:
    run = _run(tmp_path / "d4", {"steps": 2400, "lr": 5e-5, "d_augment": {"policy": [], "translation": 0.125}})
    config = json.loads((run / "config.json").read_text())
    config["discriminator"] = {"image_size": 128, "in_channels": 8, "base_channels": 32, "max_channels": 256,
                               "n_layers": 3, "norm": "none", "scales": 2}
    (run / "config.json").write_text(json.dumps(config))
    note = export_default.fine_tune_note(run, tmp_path)
    assert "`discriminator.scales=2`" in note and "n_layers" not in note and "image_size" not in note
    assert "channels" not in note  # the same widths in every guided config: not a change
    assert "d_augment" not in note  # an empty policy is no augmentation
    config["discriminator"].update(n_layers=4, norm="instance", spectral_norm=False)
    config["train"]["d_augment"]["policy"] = ["translation", "cutout"]
    (run / "config.json").write_text(json.dumps(config))
    note = export_default.fine_tune_note(run, tmp_path)
    assert "`discriminator.n_layers=4`" in note and '`discriminator.norm="instance"`' in note
    assert "`discriminator.spectral_norm=false`" in note
    assert '`train.d_augment.policy=["translation", "cutout"]` (DiffAugment)' in note


def test_the_note_names_the_guide_leaning_settings_where_they_left_the_defaults(export_default, tmp_path: Path) -> None:
    run = _run(tmp_path / "lean", {"steps": 2400, "lr": 5e-5, "latent_mix": [0.25, 0.25, 0.5]})
    config = json.loads((run / "config.json").read_text())
    config["data"].update(rough_probability=0.5, rough={"partial_probability": 0.3, "partial_keep": [0.4, 0.95]})
    (run / "config.json").write_text(json.dumps(config))
    note = export_default.fine_tune_note(run, tmp_path)
    assert "latent_mix" not in note and "rough" not in note  # the code's defaults: nothing to say
    config["train"]["latent_mix"] = [0.6, 0.1, 0.3]
    config["data"].update(rough_probability=0.85, rough={"partial_probability": 0.5, "partial_keep": [0.3, 0.9]})
    (run / "config.json").write_text(json.dumps(config))
    note = export_default.fine_tune_note(run, tmp_path)
    assert "`train.latent_mix=[0.6, 0.1, 0.3]`" in note and "`data.rough_probability=0.85`" in note
    assert "`data.rough.partial_probability=0.5`" in note and "`data.rough.partial_keep=[0.3, 0.9]`" in note


def test_rewriting_the_card_of_a_model_fine_tuned_in_place_drops_its_own_row(export_default, tmp_path: Path) -> None:
    # The run started from the shipped folder and was exported into it: the card there is now the
    # run's own, so a --card-only rewrite must not count the run twice.
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    run = _run(tmp_path / "ft", {"steps": 2400}, init_generator=str(shipped))
    own_row = "| guided U-Net generator (stage 2), fine-tune 2 | 2400 | 8 | 19,200 | 1.10 h | 4.9 | 2 |"
    (shipped / "MODEL_CARD.md").write_text(
        f"# Model card\n\nWritten by `scripts/export_default.py` from `{run}`.\n\n"
        + START_CARD.split("\n\n", 1)[1].replace("| 2 |\n\nHardware", f"| 2 |\n{own_row}\n\nHardware"))
    _, rows = export_default.inherited_budget_rows(run)
    assert rows == ["| guided U-Net generator (stage 2) | 6000 | 8 | 48,000 | 2.48 h | 8.4 | 2 |"]
    # The same card written from another run keeps every row.
    other = _run(tmp_path / "other", {"steps": 2400}, init_generator=str(shipped))
    assert export_default.inherited_budget_rows(other)[1][-1] == own_row


def test_keep_styles_keeps_the_named_sketch_styles_in_order(export_default) -> None:
    from sketch2anime.models.latent_bank import LatentBank

    ids = [f"face{i}/{style}" for i in range(3) for style in ("detail", "xdog", "hed")]
    bank = LatentBank(torch.arange(9, dtype=torch.float32)[:, None].repeat(1, 4), ids)
    kept = export_default.keep_styles(bank, ["detail", "xdog"])
    assert kept.ids == ["face0/detail", "face0/xdog", "face1/detail", "face1/xdog", "face2/detail", "face2/xdog"]
    assert kept.latents[:, 0].tolist() == [0, 1, 3, 4, 6, 7]  # each row keeps its own latent
    with pytest.raises(SystemExit, match="no bank rows"):
        export_default.keep_styles(bank, ["pencil"])


def test_a_shipped_snapshot_counts_the_run_only_up_to_its_step(export_default, tmp_path: Path) -> None:
    run = _run(tmp_path / "long", {"steps": 14000, "lr": 1e-4}, init_generator=str(tmp_path / "shipped"))
    # Killed after step 300 (last checkpoint 200), resumed: steps 300 and 400 come twice, then 500.
    records = [(100, 10.0), (200, 20.0), (300, 30.0), (300, 25.0), (400, 35.0), (500, 45.0)]
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": step, "time": time, "images_per_s": 8.0}) + "\n"
                                               for step, time in records))
    whole, snapshot = export_default.run_budget(run), export_default.run_budget(run, until_step=300)
    assert whole["steps"] == 500 and whole["hours"] == pytest.approx((30 + 45) / 3600)
    # The second pass through step 300 is the one the snapshot holds: its time is counted, 400 and 500 are not.
    assert snapshot["steps"] == 300 and snapshot["images_seen"] == 2400
    assert snapshot["hours"] == pytest.approx((30 + 25) / 3600)
    configured = json.loads((run / "config.json").read_text())["train"]["steps"]
    assert configured != 300
    note = export_default.fine_tune_note(run, tmp_path / "shipped", snapshot=300)
    assert f"`train.steps={configured}` (shipped at its step-300 snapshot)" in note
    with pytest.raises(SystemExit, match="no record of step 250"):
        export_default.run_budget(run, until_step=250)
    assert export_default.run_budget(run, until_step=250, strict=False)["steps"] == 500


def test_a_baselines_budget_stops_at_the_step_its_model_was_exported(export_default, tmp_path: Path) -> None:
    run = _run(tmp_path / "p2p", {"steps": 40000})
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": step, "time": float(step), "images_per_s": 8.0})
                                               + "\n" for step in (100, 200, 300)))
    (run / "model").mkdir()
    (run / "model" / "pipeline.json").write_text(json.dumps({"pipeline_type": "pix2pix", "training": {"step": 200}}))
    result = {"models": [{"name": "p2p", "path": str(run / "model"), "pipeline_type": "pix2pix"},
                         {"name": "floor-mean", "path": "", "pipeline_type": "floor"}]}
    [(name, budget)] = export_default.baseline_budgets(result)
    assert name == "p2p" and budget["steps"] == 200 and budget["images_seen"] == 1600


def _tiny_guided(folder: Path, seed: int, experiment: str = "", size: int = 64) -> None:
    """A ``size`` px guided pipeline folder (autoencoder at the same size): one shared autoencoder, bank
    and palettes; the generator from ``seed``."""
    from sketch2anime.data.palettes import PaletteBank
    from sketch2anime.models.autoencoder import AutoencoderConfig, SketchAutoencoder
    from sketch2anime.models.guided_unet import GuidedUNet, GuidedUNetConfig
    from sketch2anime.models.latent_bank import LatentBank
    from sketch2anime.pipeline_format import PipelineDescription, write_pipeline_folder

    torch.manual_seed(0)
    autoencoder = SketchAutoencoder(AutoencoderConfig(image_size=size, latent_dim=16, base_channels=4, max_channels=16))
    ids = [f"face_{i}/detail" for i in range(12)]
    bank = LatentBank(torch.randn(12, 16), ids)
    palettes = PaletteBank(torch.randint(0, 256, (12, 16, 16, 3), dtype=torch.uint8), ids)
    torch.manual_seed(seed)
    generator = GuidedUNet(GuidedUNetConfig(image_size=size, latent_dim=16, base_channels=4, max_channels=16, depth=3))
    training = {"experiment": experiment} if experiment else {}
    write_pipeline_folder(folder, PipelineDescription("guided", size, 4, latent_dim=16, training=training),
                          {"autoencoder": autoencoder, "generator": generator}, bank=bank, palettes=palettes)


def test_a_soup_export_ships_the_average_with_the_starting_model_and_counts_both(export_default,
                                                                                  tmp_path: Path) -> None:
    from sketch2anime.checkpoint import read_tensors

    start = tmp_path / "shipped"
    _tiny_guided(start, seed=1, experiment="guided128_parts")
    (start / "MODEL_CARD.md").write_text(START_CARD)
    run = _run(tmp_path / "long", {"steps": 14000, "lr": 1e-4, "l1_weight": 100.0}, init_generator=str(start))
    _tiny_guided(run / "snapshots" / "step_0000300", seed=2)
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "time": float(s), "images_per_s": 8.0}) + "\n"
                                               for s in (100, 200, 300, 400)))
    target = tmp_path / "default"
    assert export_default.main([str(run), "--snapshot", "300", "--soup-alpha", "0.25", "--target", str(target)]) == 0

    shipped = read_tensors(target / "generator" / "model.safetensors")
    first = read_tensors(start / "generator" / "model.safetensors")
    second = read_tensors(run / "snapshots" / "step_0000300" / "generator" / "model.safetensors")
    name = next(k for k, v in first.items() if v.is_floating_point() and v.numel() > 100 and v.std() > 0)
    expected = 0.75 * first[name] + 0.25 * second[name]
    assert shipped[name].dtype == torch.float16
    assert (shipped[name].float() - expected).abs().max() <= 1e-3 * expected.abs().max()
    # Nearer the start than the fine-tune (alpha 0.25, not 0.75).
    assert (shipped[name].float() - first[name]).norm() < (shipped[name].float() - second[name]).norm()
    card = (target / "MODEL_CARD.md").read_text()
    assert "| guided U-Net generator (stage 2) | 6000 | 8 | 48,000 |" in card  # the start's budget
    assert "| guided U-Net generator (stage 2), fine-tune | 300 | 8 | 2,400 |" in card  # the run up to the snapshot
    assert "weight average 0.75 ×" in card and "--alpha 0.25" in card
    assert f"generator of `{start}` (experiment `guided128_parts`)" in card  # a copied folder named by what made it
    assert "Trained for about 2.6 hours" in card  # 2.48 h inherited + the run's 300 s
    assert "the 64 px autoencoder of the previous default model" in card and "blurry grey shadow" in card
    assert "`configs/ae64.toml` trains a new one" in card and "guided128_ae128" not in card


def test_a_soup_of_a_run_from_scratch_is_refused(export_default, tmp_path: Path) -> None:
    run = _run(tmp_path / "scratch", {"steps": 10})
    _tiny_guided(run / "model", seed=1)
    with pytest.raises(SystemExit, match="needs a fine-tuned run"):
        export_default.main([str(run), "--soup-alpha", "0.5", "--target", str(tmp_path / "default")])
    assert not (tmp_path / "default").exists()


def test_an_export_with_denoise_ships_the_clean_up_and_says_so(export_default, tmp_path: Path) -> None:
    from sketch2anime.inference import Sketch2AnimePipeline
    from sketch2anime.models.denoise import DenoiseConfig

    start = tmp_path / "shipped"
    _tiny_guided(start, seed=1, experiment="guided128_parts")
    (start / "MODEL_CARD.md").write_text(START_CARD)
    run = _run(tmp_path / "long", {"steps": 300, "lr": 1e-4}, init_generator=str(start))
    _tiny_guided(run / "model", seed=2)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 300, "time": 300.0, "images_per_s": 8.0}) + "\n")
    target = tmp_path / "default"
    assert export_default.main([str(run), "--denoise", "5,12,2", "--target", str(target)]) == 0
    assert Sketch2AnimePipeline.from_pretrained(target).description.denoise == DenoiseConfig(5, 12.0, 2.0)
    card = (target / "MODEL_CARD.md").read_text()
    assert "Picture clean-up" in card and "diameter 5 px, colour sigma 12 of 255, space sigma 2 px" in card
    # without --denoise the source's setting (none here) is kept, and the card says nothing
    assert export_default.main([str(run), "--target", str(tmp_path / "plain")]) == 0
    assert Sketch2AnimePipeline.from_pretrained(tmp_path / "plain").description.denoise is None
    assert "Picture clean-up" not in (tmp_path / "plain" / "MODEL_CARD.md").read_text()
    with pytest.raises(SystemExit):
        export_default.main([str(run), "--denoise", "4,10,3", "--target", str(tmp_path / "bad")])
    assert not (tmp_path / "bad").exists()


def test_refresh_card_rewrites_the_metrics_and_the_clean_up_bullet_only(export_default, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from sketch2anime.models.denoise import DenoiseConfig
    from sketch2anime.pipeline_format import PipelineDescription

    target = tmp_path / "default"
    _tiny_guided(target, seed=1)
    card = ["# Model card", "", "Written by export.", "", "## What it is", "", "- Type guided.",
            "- Resolution 64×64 px.", "", "## Training budget and hardware", "", "| budget row |", "",
            "## Metrics", "", "old numbers", "", "### Against the trivial floors, per set", "", "old floors", "",
            "## Examples", "", "showcase", ""]
    (target / "MODEL_CARD.md").write_text("\n".join(card))
    metrics = tmp_path / "missing.json"
    with pytest.raises(SystemExit, match="metrics.json"):
        export_default.main(["--refresh-card", "--metrics", str(metrics), "--target", str(target)])
    # a real evaluation's metrics.json is large; the section writer is exercised elsewhere, so stand it in
    monkeypatch.setattr(export_default, "metrics_section", lambda path: ["new numbers from " + path.name])
    metrics.write_text("{}")
    PipelineDescription.read(target).replace(denoise=DenoiseConfig(7, 10.0, 3.0)).write(target)
    assert export_default.main(["--refresh-card", "--metrics", str(metrics), "--target", str(target)]) == 0
    text = (target / "MODEL_CARD.md").read_text()
    assert "new numbers from missing.json" in text and "old numbers" not in text and "old floors" not in text
    assert "| budget row |" in text and "## Examples" in text and "showcase" in text
    lines = text.splitlines()
    bullet = next(i for i, line in enumerate(lines) if line.startswith("- Picture clean-up:"))
    assert lines[bullet + 1].startswith("- Resolution") and "diameter 7 px, colour sigma 10 of 255" in lines[bullet]
    assert "mirror" not in lines[bullet]
    PipelineDescription.read(target).replace(flip_average=True).write(target)
    assert export_default.main(["--refresh-card", "--metrics", str(metrics), "--target", str(target)]) == 0
    bullet = next(line for line in (target / "MODEL_CARD.md").read_text().splitlines()
                  if line.startswith("- Picture clean-up:"))
    assert bullet.index("mirror image") < bullet.index("bilateral filter") and "`flip_average`" in bullet
    # twice gives one bullet; without the clean-up it goes
    assert export_default.main(["--refresh-card", "--metrics", str(metrics), "--target", str(target)]) == 0
    assert (target / "MODEL_CARD.md").read_text().count("- Picture clean-up:") == 1
    PipelineDescription.read(target).replace(denoise=None, flip_average=False).write(target)
    assert export_default.main(["--refresh-card", "--metrics", str(metrics), "--target", str(target)]) == 0
    assert "- Picture clean-up:" not in (target / "MODEL_CARD.md").read_text()
    with pytest.raises(SystemExit):
        export_default.main([str(tmp_path), "--refresh-card", "--metrics", str(metrics), "--target", str(target)])


def test_the_card_describes_the_autoencoder_that_ships(export_default, tmp_path: Path) -> None:
    start = tmp_path / "shipped"
    _tiny_guided(start, seed=1, experiment="guided128_parts")
    (start / "MODEL_CARD.md").write_text(START_CARD)
    run = _run(tmp_path / "ae128", {"steps": 300, "lr": 1e-4}, init_generator=str(start))
    _tiny_guided(run / "model", seed=2, size=128)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 300, "time": 300.0, "images_per_s": 8.0}) + "\n")
    target = tmp_path / "default"
    assert export_default.main([str(run), "--target", str(target)]) == 0
    card = (target / "MODEL_CARD.md").read_text()
    assert "a 128 px autoencoder (`configs/ae128.toml`)" in card and "drawn at 128 px" in card
    assert "64 px autoencoder of the previous default" not in card and "blurry grey shadow" not in card
    assert "`configs/guided128_ae128.toml" in card and "`configs/ae64.toml` trains a new one" not in card

    _tiny_guided(run / "model", seed=2, size=32)  # a size the card has no words for: refused, not mislabelled
    with pytest.raises(SystemExit, match="no text for a 32 px sketch autoencoder"):
        export_default.main([str(run), "--target", str(target)])
    assert "a 128 px autoencoder" in (target / "MODEL_CARD.md").read_text()  # the shipped folder untouched
