"""Switch a pipeline folder's picture clean-up (the bilateral filter of models/denoise.py, and
optionally the flip average before it) on or off.

    python scripts/set_denoise.py FOLDER [--out COPY] [--diameter 7] [--sigma-colour 5] [--sigma-space 3]
                                  [--flip-average]
    python scripts/set_denoise.py FOLDER --off

Writes the ``"denoise"`` and ``"flip_average"`` entries of ``pipeline.json`` (nothing else changes: the weights, banks and
model card stay as they are). With ``--out`` the folder is copied first and the copy changed, so
the two can be scored side by side (``sketch2anime evaluate --model FOLDER --model COPY``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from sketch2anime.checkpoint import CheckpointError
from sketch2anime.models.denoise import DenoiseConfig
from sketch2anime.pipeline_format import PipelineDescription, find_pipeline_folder

DEFAULTS = DenoiseConfig()  # the shipped setting: 7 px, colour sigma 5, space sigma 3


def set_denoise(folder: Path, setting: DenoiseConfig | None, out: Path | None = None,
                flip_average: bool = False) -> Path:
    """Write ``setting`` (None: off) and ``flip_average`` into ``folder``'s ``pipeline.json``, or
    into a copy at ``out``."""
    source = find_pipeline_folder(folder)
    if source is None:
        raise ValueError(f"{folder} is not a pipeline folder (no pipeline.json)")
    description = PipelineDescription.read(source)  # a damaged file stops here, before any copy
    target = source
    if out is not None:
        if out.exists():
            raise ValueError(f"--out {out} already exists; pick a new folder")
        shutil.copytree(source, out)
        target = out
    description.replace(denoise=setting, flip_average=flip_average).write(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="pipeline folder (or a run folder with model/)")
    parser.add_argument("--out", type=Path, default=None, help="change a copy made here instead of the folder")
    parser.add_argument("--diameter", type=int, default=DEFAULTS.diameter)
    parser.add_argument("--sigma-colour", type=float, default=DEFAULTS.sigma_colour)
    parser.add_argument("--sigma-space", type=float, default=DEFAULTS.sigma_space)
    parser.add_argument("--flip-average", action="store_true",
                        help="also average each picture with the mirrored picture of the mirrored drawing, "
                             "before the filter (twice the generator's work)")
    parser.add_argument("--off", action="store_true", help="remove the clean-up (the filter and the flip average)")
    args = parser.parse_args(argv)
    try:
        setting = None if args.off else DenoiseConfig(args.diameter, args.sigma_colour, args.sigma_space)
        if args.off and args.flip_average:
            raise ValueError("--off removes the whole clean-up; drop --flip-average or --off")
        target = set_denoise(args.folder, setting, args.out, flip_average=args.flip_average)
    except (ValueError, CheckpointError) as exc:
        print(f"set_denoise: {exc}", file=sys.stderr)
        return 2
    print(f"{target}: denoise {'off' if setting is None else setting.to_dict()}, "
          f"flip average {'on' if args.flip_average else 'off'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
