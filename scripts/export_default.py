"""Install a trained pipeline as the package's default model, with a model card written from its logs.

    python scripts/export_default.py runs/s2a64 --ae-run runs/ae64 \
        --metrics runs/default-eval/metrics.json --showcase docs/images/showcase.png

Writes RUN/model, or with ``--snapshot N`` RUN/snapshots/step_NNNNNNN (pipeline.json, autoencoder/,
generator/, latent bank, palettes), or with ``--soup-alpha a`` the weight average of that model and
the one the run was fine-tuned from (``sketch2anime interpolate``), into
src/sketch2anime/pretrained/default/ with ``save_pretrained``
(weights as float16, latent banks as int8), checks that it loads and runs, and writes MODEL_CARD.md
beside it. Every figure in the card comes from the run folders (config.json, metrics.jsonl) and, if
given, an evaluation's metrics.json, so rerunning this script after retraining rewrites the card.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from sketch2anime.checkpoint import atomic_save_tensors, atomic_write_text, read_model_description, read_tensors
from sketch2anime.inference import DEFAULT_MODEL_DIR, Sketch2AnimePipeline
from sketch2anime.interpolate import interpolate_pipelines
from sketch2anime.data.palettes import PaletteBank
from sketch2anime.data.rough import RoughSketchConfig
from sketch2anime.models.denoise import DenoiseConfig
from sketch2anime.models.discriminator import DiscriminatorConfig
from sketch2anime.models.latent_bank import LatentBank
from sketch2anime.training.config import DataConfig, TrainConfig

MAX_BYTES = 50_000_000  # the package-data budget for a shipped model


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_budget(run: Path, until_step: int | None = None, strict: bool = True) -> dict[str, Any]:
    """Steps, batch, wall time (sum over resumed segments) and median images/s of one training run,
    or of its part up to ``until_step`` (the step its model was exported at): the log up to that
    step's last record. A step the log never recorded is an error, or with ``strict=False`` the
    whole log is counted."""
    config = json.loads((run / "config.json").read_text())
    records = read_jsonl(run / "metrics.jsonl")
    if until_step is not None:
        ends = [i for i, record in enumerate(records) if record["step"] == until_step]
        if not ends and strict:
            raise SystemExit(f"{run}/metrics.jsonl has no record of step {until_step}")
        if ends:
            records = records[:ends[-1] + 1]  # a step logged twice (killed, resumed) counts its last pass
    steps = records[-1]["step"] if records else 0
    # "time" restarts when a run is resumed: add up each segment's last value.
    seconds, previous = 0.0, 0.0
    for record in records:
        if record["time"] < previous:
            seconds += previous
        previous = record["time"]
    seconds += previous
    speeds = sorted(r["images_per_s"] for r in records[1:] if "images_per_s" in r)
    return {"stage": config["experiment"]["stage"], "steps": steps, "batch_size": config["data"]["batch_size"],
            "images_seen": steps * config["data"]["batch_size"], "hours": seconds / 3600,
            "images_per_s": speeds[len(speeds) // 2] if speeds else None, "dataset": config["data"]["root"],
            "threads": config["train"].get("threads"), "last": records[-1] if records else {}}


def training_record(model_folder: Path) -> dict[str, Any]:
    """The ``training`` section of a model folder's pipeline.json (what made it), or {} if unreadable."""
    try:
        record = json.loads((model_folder / "pipeline.json").read_text()).get("training", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return record if isinstance(record, dict) else {}


def exported_step(model_folder: Path) -> int | None:
    """The training step a model folder was exported at (its pipeline.json), if it says."""
    step = training_record(model_folder).get("step")
    return step if isinstance(step, int) else None


def keep_styles(bank: LatentBank, styles: list[str]) -> LatentBank:
    """The rows of ``bank`` whose id ends in ``/<style>`` for one of ``styles`` (ids are ``face/style``)."""
    keep = [i for i, row_id in enumerate(bank.ids) if row_id.rsplit("/", 1)[-1] in styles]
    if not keep:
        raise SystemExit(f"no bank rows of the styles {styles}; ids look like {bank.ids[:2]}")
    return LatentBank(bank.latents[keep], [bank.ids[i] for i in keep])


BUDGET_HEADING = "## Training budget and hardware"


def inherited_budget_rows(run: Path) -> tuple[Path | None, list[str]]:
    """Budget rows of the card of the model a fine-tune started from (``experiment.init_generator``).

    A fine-tuned generator carries its starting model's training too; that model's own run folder
    may be gone, but its card recorded the budget, so the rows are copied from there, verbatim.
    When the run started from the folder it is exported to, that card may already be this run's
    own (a rewrite with ``--card-only``): its last row is then this run's and is left out.
    """
    config = json.loads((run / "config.json").read_text())
    start = config.get("experiment", {}).get("init_generator") or ""
    if not start:
        return None, []
    card = Path(start).expanduser() / "MODEL_CARD.md"
    if not card.is_file():
        raise SystemExit(f"{run} was fine-tuned from {start}, which has no MODEL_CARD.md to take its budget from")
    lines = card.read_text(encoding="utf-8").splitlines()
    if BUDGET_HEADING not in lines:
        raise SystemExit(f"{card} has no '{BUDGET_HEADING}' section")
    rows = []
    for line in lines[lines.index(BUDGET_HEADING) + 1:]:
        if rows and not line.startswith("|"):
            break
        if line.startswith("| ") and not line.startswith("| stage |"):
            rows.append(line)
    written_from = next((line.split("from `", 1)[1].split("`", 1)[0] for line in lines
                         if line.startswith("Written by ") and "from `" in line), None)
    if written_from is not None and Path(written_from).expanduser().resolve() == run.expanduser().resolve():
        rows = rows[:-1]
    return Path(start), rows


def budget_row_hours(row: str) -> float:
    """The wall time of one budget-table row (``| ... | 2.48 h | ...``)."""
    cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
    for cell in cells:
        if cell.endswith(" h"):
            try:
                return float(cell[:-2])
            except ValueError:
                break
    raise SystemExit(f"a budget row without a wall time: {row}")


def fine_tune_stage_suffix(inherited: list[str]) -> str:
    """", fine-tune" for the first fine-tune, ", fine-tune 2" when the starting model was one already."""
    earlier = sum("fine-tune" in row.split("|")[1] for row in inherited)
    return ", fine-tune" + (f" {earlier + 1}" if earlier else "")


def fine_tune_note(run: Path, start: Path, snapshot: int | None = None, soup_alpha: float | None = None) -> str:
    """How the fine-tune differed from the configuration it started from, read from its config.json
    (``train.steps`` as configured: its learning-rate schedule; a shipped snapshot's step is named
    after it), and, with ``soup_alpha``, that the shipped generator averages the fine-tune's weights
    with the starting model's."""
    config = json.loads((run / "config.json").read_text())
    train = config["train"]
    keys = ("steps", "lr", "l1_weight", "adversarial_weight", "ssim_weight", "flatness_weight")
    settings = [f"`train.{key}={train[key]}`" for key in keys if train.get(key) not in (None, 0, 0.0)]
    # The discriminator's design choices the fine-tunes vary, where they left the defaults (its widths
    # are the same in every guided config; older runs' configs lack the newer keys, then at default).
    defaults = dataclasses.asdict(DiscriminatorConfig())
    for key in ("n_layers", "spectral_norm", "norm", "scales"):
        value = (config.get("discriminator") or {}).get(key, defaults[key])
        if value != defaults[key]:
            settings.append(f"`discriminator.{key}={json.dumps(value)}`")
    # What the guide-leaning fine-tunes vary: which latent guides each item, how many sketches are rough
    # or unfinished (listed where they left the code's defaults).
    data = config.get("data") or {}
    for name, value, default in (
            ("train.latent_mix", train.get("latent_mix"), TrainConfig.latent_mix),
            ("data.rough_probability", data.get("rough_probability"), DataConfig.rough_probability),
            ("data.rough.partial_probability", (data.get("rough") or {}).get("partial_probability"),
             RoughSketchConfig.partial_probability),
            ("data.rough.partial_keep", (data.get("rough") or {}).get("partial_keep"), RoughSketchConfig.partial_keep)):
        if value is not None and json.dumps(value) != json.dumps(default):
            settings.append(f"`{name}={json.dumps(value)}`")
    policy = (train.get("d_augment") or {}).get("policy") or []
    if policy:
        settings.append(f"`train.d_augment.policy={json.dumps(list(policy))}` (DiffAugment)")
    if snapshot is not None and snapshot != train.get("steps"):
        settings[0] += f" (shipped at its step-{snapshot:,} snapshot)"
    settings = ", ".join(settings)
    # A copied folder's path says little; the experiment that made it says which model it is.
    made_by = training_record(Path(start)).get("experiment")
    named = f"`{start}`" + (f" (experiment `{made_by}`)" if isinstance(made_by, str) else "")
    note = (f"The last row fine-tuned the generator of {named} (its rows above, from its model card) with "
            f"`--set experiment.init_generator={start}` and {settings}; the discriminator and optimiser "
            "started afresh.")
    if soup_alpha is not None:
        note += (f" The shipped generator is not the fine-tune's own: it is the weight average {1 - soup_alpha:g} × "
                 f"`{start}` + {soup_alpha:g} × the fine-tune (`sketch2anime interpolate ... --alpha {soup_alpha:g}`, "
                 "no further training), so its budget is the rows above together.")
    return note


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def half_precision_weights(path: Path) -> None:
    """Store a model's float weights as float16 (loading casts them back into the float32 module).

    Measured on the stage-1 autoencoder: latents move by at most 0.03% (relative L2), far below
    the distance between neighbours in the bank, and the file halves.
    """
    tensors = read_tensors(path)
    atomic_save_tensors(path, {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()})


def make_palettes(folder: Path, dataset_root: Path) -> PaletteBank:
    """Colour thumbnails of the training images (Seed / Variations), for runs exported before they existed."""
    from sketch2anime.data.dataset import DatasetConfig, PairedSketchDataset

    if not dataset_root.is_dir():
        raise SystemExit(f"{folder} has no palettes and its training dataset {dataset_root} is not here to make them")
    dataset = PairedSketchDataset(DatasetConfig(root=str(dataset_root), split="train", in_memory=False))
    return PaletteBank.from_images([dataset.color(i) for i in range(len(dataset))], [r.id for r in dataset.records])


CLEAN_UP_BULLET = "- Picture clean-up:"


def denoise_lines(description: dict[str, Any]) -> list[str]:
    """The card's bullet on the folder's picture clean-up (``pipeline.json``'s ``flip_average`` and
    ``denoise``), if any."""
    setting, flip = description.get("denoise"), description.get("flip_average") is True
    if not setting and not flip:
        return []
    steps = []
    if flip:
        steps.append("is averaged with the mirror image of the picture drawn from the mirrored sketch, hints and "
                     "guide (the `flip_average` entry of `pipeline.json`; where the generator hedges, the two "
                     "disagree and the mean settles it; twice the generator's work)")
    if setting:
        steps.append(f"passes an edge-preserving bilateral filter (`models/denoise.py`; diameter "
                     f"{setting['diameter']} px, colour sigma {setting['sigma_colour']:g} of 255, space sigma "
                     f"{setting['sigma_space']:g} px, the `denoise` entry; it smooths the generator's faint speckle "
                     "and keeps lines and colour edges)")
    return [f"{CLEAN_UP_BULLET} every picture {', then '.join(steps)}. `scripts/set_denoise.py FOLDER --off` "
            "removes the clean-up, `pipe(..., denoise=False)` skips it for one call."]


def refresh_card(target: Path, metrics: Path) -> Path:
    """Rewrite only what changes without retraining in ``target``'s card: the clean-up bullet (from
    its ``pipeline.json``) and the Metrics section (from ``metrics``); the rest (what made the weights,
    the budget) stays as the export wrote it, which needs the run folders."""
    card_path = target / "MODEL_CARD.md"
    if not card_path.is_file() or not (target / "pipeline.json").is_file():
        raise SystemExit(f"--refresh-card needs {target} with pipeline.json and MODEL_CARD.md")
    if not metrics.is_file():
        raise SystemExit(f"--refresh-card needs --metrics, an evaluation's metrics.json; {metrics} is not a file")
    lines = [line for line in card_path.read_text().splitlines() if not line.startswith(CLEAN_UP_BULLET)]
    try:
        start, end = lines.index("## Metrics"), lines.index("## Examples")
        resolution = next(i for i, line in enumerate(lines) if line.startswith("- Resolution"))
    except (ValueError, StopIteration):
        raise SystemExit(f"{card_path} lacks the export's sections (## Metrics, ## Examples, - Resolution)") from None
    refreshed = lines[:start + 2] + metrics_section(metrics) + [""] + lines[end:]
    bullet = denoise_lines(json.loads((target / "pipeline.json").read_text()))
    refreshed[resolution:resolution] = bullet
    atomic_write_text(card_path, "\n".join(refreshed) + "\n")
    return card_path


def metrics_section(path: Path | None) -> list[str]:
    if path is None or not path.is_file():
        return ["Not evaluated yet: run `sketch2anime evaluate --model default --data DATASET --out DIR` and rerun "
                "this script with `--metrics DIR/metrics.json`."]
    from sketch2anime.evaluation.floor_report import floor_tables_markdown
    from sketch2anime.evaluation.report import headline_table, markdown_table

    result = json.loads(path.read_text())
    p = result["protocol"]
    headers, rows, caption = headline_table(result)
    lines = [f"From `{path}` (`scripts/evaluate_default.sh`, or the `sketch2anime evaluate` command it runs): {p['n_evaluated']} held-out validation images at "
             f"{p['image_size']} px, seeded hints and rough sketches (`sketch2anime evaluate`). {caption}", "",
             markdown_table(headers, rows), "",
             "FID/KID here use HED-VGG16 features unless the table says Inception: they rank models on this data and "
             "are not comparable with published FID figures."]
    baselines = baseline_budgets(result)
    if baselines:
        lines += ["", "Baselines in these tables (not shipped), trained on the same prepared data:", "",
                  "| model | stage | steps | batch | images seen | wall time | images/s (median) |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {name} | {b['stage']} | {b['steps']} | {b['batch_size']} | {b['images_seen']:,} | "
                  f"{b['hours']:.2f} h | {b['images_per_s'] or 0:.1f} |" for name, b in baselines]
    return lines + ["", "### Against the trivial floors, per set", "", floor_tables_markdown(result, heading="####")]


def baseline_budgets(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, run budget) of every evaluated non-guided pipeline whose training run folder is at hand."""
    found = []
    for model in result.get("models", []):
        run = Path(model.get("path", "")).parent
        if model.get("pipeline_type") not in ("guided", "floor", "reference", "oracle") and (run / "metrics.jsonl").is_file():
            # The log may go on past the exported model (a run killed after its last checkpoint).
            found.append((model["name"], run_budget(run, exported_step(Path(model["path"])), strict=False)))
    return found


def autoencoder_size(target: Path) -> int:
    """Side in px of the sketch autoencoder shipped in ``target``."""
    return int(read_model_description(target / "autoencoder")["config"]["image_size"])


def autoencoder_text(table: dict[int, str], target: Path) -> str:
    """The card's text from ``table`` (AUTOENCODER_DATA, GUIDE_LIMIT, RETRAIN_AUTOENCODER) for the
    autoencoder in ``target``."""
    size = autoencoder_size(target)
    if size not in table:
        raise SystemExit(f"the card has no text for a {size} px sketch autoencoder; add it to AUTOENCODER_DATA, "
                         "GUIDE_LIMIT and RETRAIN_AUTOENCODER in scripts/export_default.py")
    return table[size]


def write_card(target: Path, generator_run: Path, ae_run: Path | None, metrics: Path | None,
               showcase: Path | None, inherited: tuple[Path | None, list[str]],
               parts_run: Path | None = None, snapshot: int | None = None,
               soup_alpha: float | None = None) -> Path:
    """MODEL_CARD.md in ``target``; ``inherited`` is ``inherited_budget_rows(generator_run)``, read
    before ``target`` was replaced (a fine-tune of the shipped model starts from ``target``);
    ``snapshot``: the run's step whose snapshot was shipped (its budget stops there);
    ``soup_alpha``: the shipped generator averages the run's with its starting model's."""
    description = json.loads((target / "pipeline.json").read_text())
    gen = (run_budget(generator_run, snapshot) if snapshot is not None
           else run_budget(generator_run, exported_step(generator_run / "model"), strict=False))
    guided = description["pipeline_type"] == "guided"
    runs = [("sketch autoencoder (stage 1)", run_budget(ae_run))] if ae_run else []
    if parts_run:  # its batch counts faces; each gives three part crops
        runs.append(("part autoencoder (eyes, mouth)", run_budget(parts_run)))
    start, inherited_rows = inherited
    stage = "guided U-Net generator (stage 2)" if guided else "hint generator (stage 2)"
    runs.append((stage + (fine_tune_stage_suffix(inherited_rows) if start is not None else ""), gen))
    size_mb = folder_bytes(target) / 1e6
    bank = json.loads((target / "latent_bank.json").read_text()) if (target / "latent_bank.json").is_file() else {}
    part_banks = sorted((target / "parts").glob("bank_*.json"))
    part_rows = json.loads(part_banks[0].read_text()).get("count") if part_banks else None
    lines = [
        "# Model card: sketch2anime default model", "",
        f"Written by `scripts/export_default.py` from `{generator_run}`"
        + (f" (its snapshot of step {snapshot})" if snapshot is not None else "")
        + (f", averaged with its starting model (alpha {soup_alpha:g})" if soup_alpha is not None else "")
        + "".join(f" and `{run}`" for run in (ae_run, parts_run) if run) + ".", "",
        "## What it is", "",
        f"- Type `{description['pipeline_type']}`: sketch autoencoder (512-d latent) + latent bank of "
        f"{bank.get('count', '?')} training sketches for the K={description.get('projection', {}).get('k', 10)} "
        "nearest-neighbour sum-to-one projection + "
        + ("a guided U-Net GAN generator that sees the user's sketch at full resolution, the *guide* (the "
           "autoencoder's decoding of the projected latent, upsampled) and the hints at every scale, with the "
           "latent modulating its bottleneck (`models/guided_unet.py`)." if guided else
           "hint-conditioned GAN generator."),
        *(["- Per-part guide (`models/part_guide.py`, as DeepFaceDrawing): a 32 px part autoencoder (512-d) for "
           "the eyes (the right one mirrored) and the mouth, one latent bank and K-nearest projection per part at "
           "the same strength t; the decoded parts are pasted, feathered, into the guide (`parts/`)."]
          if (target / "parts").is_dir() else []),
        *([f"- The part banks hold {part_rows:,} rows, the sketch styles listed in the export's "
           "`--part-bank-styles` (to fit the package limit); the whole-face bank holds all "
           f"{bank.get('count', '?'):,}."] if part_rows and part_rows != bank.get("count") else []),
        *denoise_lines(description),
        f"- Resolution {description['image_size']}×{description['image_size']} px; hints at "
        f"{description['image_size'] // description['hint_downscale']} px. Inputs of any size are padded to a "
        "square, resized, and the result is resized back.",
        f"- Files: {size_mb:.1f} MB (safetensors + JSON, no pickle); the weights are stored as float16, the latent "
        "banks as int8 with one scale per row; both are loaded as float32.", "",
        "## Training data", ""] + (GUIDED_DATA + [autoencoder_text(AUTOENCODER_DATA, target)] if guided
                                    else FACES64_DATA) + [
        "- Licence of the data: none given; copyrighted art, **research use only**. The weights inherit that: use "
        "them for research and personal experiments, not commercially.", "",
        BUDGET_HEADING, "",
        "| stage | steps | batch | images seen | wall time | images/s (median) | threads |",
        "|---|---|---|---|---|---|---|"] + inherited_rows
    for name, b in runs:
        speed = f"{b['images_per_s']:.1f}" if b["images_per_s"] else "?"
        lines.append(f"| {name} | {b['steps']} | {b['batch_size']} | {b['images_seen']:,} | {b['hours']:.2f} h | "
                     f"{speed} | {b['threads'] or 'default'} |")
    lines += ["", f"Hardware: {cpu_name()}, {os.cpu_count()} cores, no GPU; torch {torch.__version__}. Other jobs "
              "shared the machine during training, so wall times are upper bounds."
              + (" " + fine_tune_note(generator_run, start, snapshot, soup_alpha) if start is not None else ""), "",
              GUIDED_RETRAIN.replace("{autoencoder}", autoencoder_text(RETRAIN_AUTOENCODER, target)) if guided
              else FACES64_RETRAIN, "",
              "## Metrics", ""] + metrics_section(metrics) + [""]
    if showcase is not None and showcase.is_file():
        lines += ["## Examples", "", f"`scripts/showcase.py` → `{showcase}` (sketch | projected sketch | result | "
                  "hint | result with hint).", ""]
    hours = sum(budget_row_hours(row) for row in inherited_rows) + sum(b["hours"] for _, b in runs)
    limits = [line.replace("{hours}", f"{hours:.1f}") for line in (GUIDED_LIMITS if guided else FACES64_LIMITS)]
    if guided:
        limits = [autoencoder_text(GUIDE_LIMIT, target) if line == "{guide_limit}" else line for line in limits]
    lines += ["## Limits", ""] + limits
    card = target / "MODEL_CARD.md"
    card.write_text("\n".join(lines), encoding="utf-8")
    return card


FACES64_DATA = [
    "- `datasets/faces64`, made by `sketch2anime prepare` from `../shared/data/anime-faces-64`: 14,896 anime "
    "face crops (64×64, getchu.com visual-novel art as committed in the public repository "
    "Mysterchan/Anime_DCGAN), 5% held out for validation (seeded, duplicate-aware split). Sketches: the detail "
    "filter and XDoG; rough sketches and round-brush colour hints simulated on the fly."]
GUIDED_DATA = [
    "- Generator: `datasets/faces128`, made by `sketch2anime prepare ../shared/data/anime-faces-256 datasets/faces128 "
    "--size 128 --extractor detail,xdog,hed --set hed.work_size=128 --val-fraction 0.05`: 3,100 TV-anime face crops "
    "(selfie2anime domain B as committed in the public repository zeka-io/selfie-to-anime) downscaled from 256 to "
    "128 px, 2,950 for training and 150 held out (seeded, duplicate-aware split). Sketches: the detail filter, XDoG "
    "at three sigmas and HED; on the fly: rough/partial sketches (jitter, dropout, partial drawing, thickness), "
    "line-style changes (width, darkness, blur, binarising, noise), flips, random crops (jitter 1.08), "
    "zoom-out onto white paper, figure cut-outs (an outlined silhouette on white paper or on a flat backdrop "
    "colour that hint dabs ask for; two fine-tunes), half-body figures (the face shrunk to the head of a drawn "
    "figure in flat-coloured, outlined clothes; the last two fine-tunes) and round-brush colour hints."]
AUTOENCODER_DATA = {
    64: "- Sketch autoencoder: the 64 px autoencoder of the previous default model, trained on `datasets/faces64` "
        "(14,896 getchu.com visual-novel faces, detail + XDoG; 2000 steps × 32 images, 0.51 h on this CPU); "
        "unchanged here. The latent bank is re-encoded from the 128 px training sketches (min-pooled to 64 px).",
    128: "- Sketch autoencoder: a 128 px autoencoder (`configs/ae128.toml`) trained on the training sketches of "
         "`datasets/faces128` (all five line styles, rough and restyled on the fly; its budget row is the "
         "stage-1 row below); the latent bank holds the same sketches encoded at 128 px. The generator's last "
         "fine-tune moved it from the 64 px autoencoder onto this one (`configs/guided128_ae128.toml`)."}
FACES64_RETRAIN = (
    "Retrain: `sketch2anime prepare ../shared/data/anime-faces-64 datasets/faces64 --size 64 --extractor "
    "detail,xdog --val-fraction 0.05 --seed 0`, then `sketch2anime train configs/ae64.toml` and "
    "`sketch2anime train configs/s2a64.toml` (step counts above via `--set train.steps=N`).")
GUIDED_RETRAIN = (
    "Retrain: prepare `datasets/faces128` as above, then `sketch2anime train configs/guided128.toml "
    "--set train.steps=4300` (4000 steps), `--resume --set train.steps=6000 --set train.l1_weight=40 --set "
    "train.adversarial_weight=0.5`, the fine-tune `sketch2anime train configs/guided128_finetune.toml` (it "
    "starts from `runs/guided128/model`), and the SSIM fine-tune `sketch2anime train configs/guided128_ssim.toml "
    "--set experiment.init_generator=runs/guided128_finetune/model` (its default starts from the shipped "
    "model), then the zoom-out fine-tune `configs/guided128_zoom.toml --set "
    "experiment.init_generator=runs/guided128_ssim/model` and the adversarial fine-tune "
    "`configs/guided128_gan.toml --set experiment.init_generator=runs/guided128_zoom/model`, the part "
    "autoencoder `configs/ae_parts.toml` and the part-guide fine-tune `configs/guided128_parts.toml --set "
    "experiment.init_generator=runs/guided128_gan/model --set experiment.parts_dir=runs/ae_parts/model` "
    "(export with `--part-bank-styles detail,xdog`), then the long adversarial fine-tune "
    "`configs/guided128_long_gan.toml --set experiment.init_generator=runs/guided128_parts/model` with a "
    "snapshot every 1,000 steps, shipped averaged with its start (`scripts/export_default.py "
    "runs/guided128_long_gan --snapshot N --soup-alpha A`, the step and alpha in the budget note above), "
    "then, with that average installed as the default, the novice-drawing fine-tune "
    "`configs/guided128_novice.toml` (it starts from the shipped model; export with `--part-bank-styles "
    "detail,xdog`), then from that model the figure cut-out fine-tune `configs/guided128_cutout.toml` and, "
    "from its model, the backdrop fine-tune `configs/guided128_backdrop.toml` (export with "
    "`--part-bank-styles detail,xdog`), then, with that installed as the default, the half-body figure "
    "fine-tune `configs/guided128_figure.toml`, exported at its step-2,400 snapshot "
    "(`scripts/export_default.py runs/guided128_figure --snapshot 2400 --part-bank-styles detail,xdog`), then, "
    "with that installed as the default, the texture fine-tune `configs/guided128_texture.toml`, shipped "
    "averaged with its start (`scripts/export_default.py runs/guided128_texture --soup-alpha A "
    "--part-bank-styles detail,xdog`, the alpha in the budget note above), then, with that average "
    "installed as the default, the two-scale-discriminator texture fine-tune "
    "`configs/guided128_texture_ms.toml`, shipped averaged with its start the same way{autoencoder}). Add "
    "`--set train.threads=1` when another job shares the 2-core machine: one thread per job was fastest then.")
RETRAIN_AUTOENCODER = {
    64: "; the stage-1 autoencoder comes from `experiment.autoencoder_dir`, `configs/ae64.toml` trains a new one",
    128: ", then the 128 px sketch autoencoder `sketch2anime train configs/ae128.toml` and, with that average "
         "installed as the default, the fine-tune that moves the generator onto it, `configs/guided128_ae128.toml "
         "--set experiment.autoencoder_dir=runs/ae128/model`, then from its model the guide-leaning fine-tune "
         "`configs/guided128_ae128_lean.toml`, shipped averaged with its start (`scripts/export_default.py "
         "runs/guided128_ae128_lean --soup-alpha 0.5 --part-bank-styles detail,xdog`, after exporting "
         "`runs/guided128_ae128` with `--ae-run runs/ae128 --target T` and copying T's card into its model folder, "
         "where the average takes its budget from); the earlier runs used the 64 px autoencoder of "
         "`configs/ae64.toml`"}
GUIDE_LIMIT = {
    64: "- The guide (autoencoder preview) is a blurry grey shadow, because the 64 px autoencoder is small, so "
        "the projection strength barely changes the result.",
    128: "- The guide (autoencoder preview) is drawn at 128 px: a clean face outline, eyes and hair masses on white "
         "paper, but closer to a template face than to the user's drawing (one 512-d latent cannot hold the "
         "lines); the generator follows the user's lines over it, so the projection strength changes the "
         "result only a little (about 10 of 255 from t = 0 to t = 1 on rough sketches; docs/experiments.md)."}
GUIDED_LIMITS = [
    "- 128 px face crops: it draws a face-crop composition. A figure drawn on white paper keeps the paper "
    "outside its outline (the cut-out fine-tunes), unless a hint asks for a background colour there. Bodies "
    "it has seen only as the simple flat-coloured figures of the last two fine-tunes: real clothes, hands, objects "
    "and scenery still get blotchy face colours where no hint says otherwise.",
    "- Trained for about {hours} hours on a 2-core CPU (the budget table's rows together): layouts and hints "
    "are followed, but flat regions still carry some colour blotches (fewer since the SSIM fine-tune; the "
    "adversarial fine-tunes add texture and some pink smudges) and fine detail is missing.",
    "{guide_limit}",
    "- Hints are followed as colour regions at 32 px hint resolution; thin hint strokes are averaged away.",
    "- Style: TV-anime faces of one data set; it reproduces that data's biases (mostly young female characters, "
    "light skin).", ""]
FACES64_LIMITS = [
    "- 64 px faces: it draws a face-crop composition (face filling the frame, hair around it). Full-body "
        "sketches, hands, objects and scenery are outside what it has seen; it will still paint them as a face.",
        "- Trained for a short time on a 2-core CPU: colours are plausible but soft, fine details blur, and "
        "the decoder's projected sketch is a blurry shadow rather than clean line art.",
        "- Hints are followed as colour regions at 16 px hint resolution; thin hint strokes are averaged away.",
        "- Style: 2000s visual-novel faces only; it reproduces that data's biases (mostly young female characters, "
        "light skin).", ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, nargs="?", default=None,
                        help="stage-2 run folder (with model/); not with --refresh-card")
    parser.add_argument("--ae-run", type=Path, default=None)
    parser.add_argument("--parts-run", type=Path, default=None,
                        help="the part autoencoder's run (configs/ae_parts.toml), for the card's budget")
    parser.add_argument("--part-bank-styles", default="",
                        help="keep only these sketch styles (bank id suffixes, e.g. detail,xdog) in the part "
                             "banks, to fit the package limit; default: all rows")
    parser.add_argument("--metrics", type=Path, default=None)
    parser.add_argument("--showcase", type=Path, default=None)
    parser.add_argument("--target", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--card-only", action="store_true", help="rewrite MODEL_CARD.md, keep the weights")
    parser.add_argument("--denoise", default=None, metavar="D,SC,SS",
                        help="ship with the bilateral picture clean-up: diameter px, colour sigma (of 255), space "
                             "sigma px, e.g. 7,10,3 (models/denoise.py); default: as the source folder has it")
    parser.add_argument("--snapshot", type=int, default=None,
                        help="ship RUN/snapshots/step_N (train.snapshot_every) instead of RUN/model")
    parser.add_argument("--soup-alpha", type=float, default=None,
                        help="ship (1 - a) x the model the run was fine-tuned from (experiment.init_generator) "
                             "+ a x the run's model (sketch2anime interpolate); the card counts both budgets")
    parser.add_argument("--refresh-card", action="store_true",
                        help="only rewrite the card's clean-up bullet and Metrics section (from --metrics) in "
                             "--target; no run folder needed")
    args = parser.parse_args(argv)
    try:  # None keeps the source folder's setting
        args.denoise = DenoiseConfig.from_text(args.denoise) if args.denoise is not None else None
    except ValueError as exc:
        parser.error(f"--denoise: {exc}")
    if args.refresh_card:
        if args.run is not None or args.denoise is not None:
            parser.error("--refresh-card takes no run folder and no --denoise (scripts/set_denoise.py sets it)")
        card = refresh_card(args.target, args.metrics or Path(""))
        print(f"refreshed {card}")
        return 0
    if args.run is None:
        parser.error("the run folder is required (unless --refresh-card)")

    source = args.run / "model" if args.snapshot is None else args.run / "snapshots" / f"step_{args.snapshot:07d}"
    if not (source / "pipeline.json").is_file():
        raise SystemExit(f"{source} is not an exported pipeline folder")
    if json.loads((source / "pipeline.json").read_text()).get("pipeline_type") == "guided":
        autoencoder_text(AUTOENCODER_DATA, source)  # a card it cannot write stops it before the target changes
    inherited = inherited_budget_rows(args.run)  # before the target, maybe the starting model, is replaced
    if not args.card_only:
        with tempfile.TemporaryDirectory(prefix="s2a-soup-") as scratch:
            if args.soup_alpha is not None:  # built before the target, maybe the starting model, is replaced
                source = soup_with_start(args.run, inherited[0], source, args.soup_alpha, Path(scratch) / "soup")
            export(args, source)
    card = write_card(args.target, args.run, args.ae_run, args.metrics, args.showcase, inherited,
                      args.parts_run, args.snapshot, args.soup_alpha)
    print(f"default model at {args.target} ({folder_bytes(args.target) / 1e6:.1f} MB); card {card}")
    return 0


def soup_with_start(run: Path, start: Path | None, source: Path, alpha: float, out: Path) -> Path:
    """``(1 - alpha) * start + alpha * source`` written to ``out``: the run's model averaged with the
    model it was fine-tuned from."""
    if start is None:
        raise SystemExit(f"--soup-alpha needs a fine-tuned run; {run} has no experiment.init_generator")
    try:
        return interpolate_pipelines(start, source, alpha, out)
    except ValueError as exc:
        raise SystemExit(f"--soup-alpha: {exc}") from None


def export(args: argparse.Namespace, source: Path) -> None:
    """Replace ``args.target`` with the pipeline at ``source`` in shipping form."""
    staging = args.target.with_name(args.target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    pipe = Sketch2AnimePipeline.from_pretrained(source, device="cpu")
    if args.denoise is not None:
        pipe.description = pipe.description.replace(denoise=args.denoise)
    if pipe.pipeline_type == "guided" and pipe.palettes is None:
        pipe.palettes = make_palettes(source, Path(pipe.description.training.get("dataset", "")))
    if args.part_bank_styles and pipe.part_banks:
        pipe.part_banks = {name: keep_styles(bank, args.part_bank_styles.split(","))
                           for name, bank in pipe.part_banks.items()}
    # int8 banks (a quarter of float32; four banks with the part guide) and float16 weights:
    # neighbours and weights barely move (tests/test_projection.py bounds the banks' error).
    pipe.save_pretrained(staging, bank_storage="int8")
    for part in ("autoencoder", "generator", "parts/autoencoder"):
        if (staging / part / "model.safetensors").is_file():
            half_precision_weights(staging / part / "model.safetensors")
    Sketch2AnimePipeline.from_pretrained(staging, device="cpu")(Image.new("L", (64, 64), 255))  # loads and runs
    size = folder_bytes(staging)
    if size > MAX_BYTES:
        raise SystemExit(f"{source} is {size / 1e6:.1f} MB even with int8 banks, over the "
                         f"{MAX_BYTES / 1e6:.0f} MB package limit")
    shutil.rmtree(args.target, ignore_errors=True)
    staging.rename(args.target)


if __name__ == "__main__":
    sys.exit(main())
