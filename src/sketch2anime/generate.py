"""``sketch2anime generate SKETCH -o OUT``: colour a sketch file or a folder of sketches with a pipeline.

Results never overwrite an input; sketches whose results would share a name get their extension
in it; existing results in an output folder are replaced only with ``--overwrite`` (all checked
before any work). ``GenerateConfig`` holds the command's settings (cli.py builds it from the
arguments), ``run_generate(config)`` does the work.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .data.image_io import IMAGE_SUFFIXES, list_images
from .inference import Sketch2AnimePipeline
from .pipeline_inputs import check_denoise, check_projection, check_seed
from .runtime import check_inference_precision
from .flatten import check_flatten
from .upscale.upscaler import check_factor, check_lines
from .work_scale import check_work_scale


@dataclass(frozen=True)
class GenerateConfig:
    """Everything ``generate`` needs; mirrors the flags of ``sketch2anime generate`` (cli.py)."""

    sketch: Path  # a sketch image, or a folder of them
    out: Path  # an output PNG for one sketch, or a folder
    hint: Path | None = None  # an RGBA hint image, or a folder matched by stem
    projection: float = 0.5
    model: str = "default"
    seed: int | None = None
    save_projected: bool = False
    overwrite: bool = False
    upscale: int = 1
    lines: float = 0.0
    flatten: float = 0.0
    denoise: bool = True  # the model's picture clean-up, if its folder has one
    work_scale: int = 1  # run the generator at this multiple of its size (work_scale.py)
    device: str = "auto"
    precision: str = "fp32"  # what the networks run in (Sketch2AnimePipeline.set_precision)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sketch", Path(self.sketch))
        object.__setattr__(self, "out", Path(self.out))
        if self.hint is not None:
            object.__setattr__(self, "hint", Path(self.hint))
        object.__setattr__(self, "model", str(self.model))
        object.__setattr__(self, "projection", check_projection(self.projection))
        object.__setattr__(self, "seed", check_seed(self.seed))
        object.__setattr__(self, "upscale", check_factor(self.upscale))
        object.__setattr__(self, "lines", check_lines(self.lines))
        object.__setattr__(self, "flatten", check_flatten(self.flatten))
        object.__setattr__(self, "denoise", check_denoise(self.denoise))
        object.__setattr__(self, "work_scale", check_work_scale(self.work_scale))
        check_inference_precision(self.precision)
        if not str(self.device).strip():
            raise ValueError("device must be auto, cpu, cuda or cuda:N, got an empty string")


def _output_path(out: Path, name: str) -> Path:
    if out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir():
        return out
    return out / f"{name}.png"


def _projected_path(target: Path) -> Path:
    return target.with_name(f"{target.stem}_projected.png")


def _unique_targets(jobs: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """face.jpg and face.png in one folder would both write face.png: such sketches keep their
    extension in the result's name (face_jpg.png, face_png.png)."""
    counts: dict[Path, int] = {}
    for _, target in jobs:
        counts[target] = counts.get(target, 0) + 1
    return [(source, target.with_name(f"{target.stem}_{source.suffix.lstrip('.').lower()}.png")
             if counts[target] > 1 else target) for source, target in jobs]


def _check_targets(targets: list[Path], inputs: set[Path], overwrite: bool) -> None:
    """Refuse, before any work: a result over an input, two results on one path, or (without
    ``overwrite``) over an existing file."""
    seen: dict[Path, Path] = {}
    existing: list[Path] = []
    for target in targets:
        key = target.resolve()
        if key in inputs:
            raise ValueError(f"{target} is one of the inputs; sketch2anime never overwrites an input "
                             "(choose another -o)")
        if key in seen:
            raise ValueError(f"two results would be written to {target}; rename one of the sketches "
                             "(e.g. a sketch named like another's _projected.png)")
        seen[key] = target
        if target.exists() and not overwrite:
            existing.append(target)
    if existing:
        shown = ", ".join(str(path) for path in existing[:3])
        if len(existing) > 3:
            shown += f" and {len(existing) - 3} more"
        raise ValueError(f"{shown} already exist{'s' if len(existing) == 1 else ''}; pass --overwrite to replace "
                         "earlier results, or choose another -o")


def _input_files(path: Path) -> set[Path]:
    if path.is_dir():
        return {p.resolve() for p in path.rglob("*") if p.is_file()}
    return {path.resolve()}


def run_generate(config: GenerateConfig) -> int:
    """``sketch2anime generate SKETCH -o OUT``; a folder in gives a folder out (same relative names).

    Hints: one RGBA file for every sketch, or a folder whose files are matched by stem. Files that
    cannot be read are skipped with a message; the exit code is 1 if any was skipped. Inputs are
    never overwritten, sketches whose results would share a name get their extension in it, and
    existing results in an output folder are replaced only with ``--overwrite`` (all checked before
    any work).
    """
    source, out, projection = config.sketch, config.out, config.projection
    if not source.exists():
        raise ValueError(f"no such sketch file or folder: {source}")
    pipeline = Sketch2AnimePipeline.from_pretrained(config.model, device=config.device,
                                                   precision=config.precision).at_scale(config.work_scale)
    upscale, lines = config.upscale, config.lines
    if upscale != 1 or lines:  # a missing upscaler stops here, naming the command, not once per file
        from .upscale.upscaler import prepare_upscaling

        upscale, lines = prepare_upscaling(upscale, lines, device=str(pipeline.device))
    hint_arg = config.hint
    if hint_arg is not None and not hint_arg.exists():
        raise ValueError(f"no such hint file or folder: {hint_arg}")

    if source.is_dir():
        if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
            raise ValueError(f"the output folder {out} is inside the sketch folder {source}: its results would be "
                             "read as sketches next time; choose a folder outside it")
        jobs = [(path, out / path.relative_to(source).with_suffix(".png")) for path in list_images(source)]
        if not jobs:
            raise ValueError(f"{source} contains no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        jobs = _unique_targets(jobs)
    else:
        jobs = [(source, _output_path(out, source.stem))]
    save_projected = config.save_projected
    targets = [target for _, target in jobs] + ([_projected_path(t) for _, t in jobs] if save_projected else [])
    inputs = _input_files(source) | (_input_files(hint_arg) if hint_arg is not None else set())
    # -o FILE.png names the result itself: replacing it is what was asked (like cp); results named
    # after the sketches in a folder are replaced only with --overwrite.
    named_file = not source.is_dir() and jobs[0][1] == out
    _check_targets(targets, inputs, overwrite=config.overwrite or named_file)

    hints: dict[str, Path] = {}
    if hint_arg is not None and hint_arg.is_dir():
        for path in list_images(hint_arg):
            hints.setdefault(path.stem, path)

    failed = 0
    for sketch_path, target in jobs:
        hint: Path | None = None
        if hint_arg is not None:
            hint = hints.get(sketch_path.stem) if hint_arg.is_dir() else hint_arg
        try:
            picture, projected = pipeline(sketch_path, hint=hint, projection=projection, seed=config.seed,
                                          return_projected=True, upscale=upscale, lines=lines,
                                          flatten=config.flatten, denoise=config.denoise)
            target.parent.mkdir(parents=True, exist_ok=True)
            picture.save(target)
            if save_projected and projected is not None:
                projected.save(_projected_path(target))
        except (ValueError, OSError) as exc:
            failed += 1
            print(f"skipped {sketch_path}: {exc}", file=sys.stderr)
            continue
        print(f"wrote {target}")
    if len(jobs) > 1:
        print(f"{len(jobs) - failed} of {len(jobs)} sketches coloured" + (f", {failed} skipped" if failed else ""))
    return 1 if failed else 0
