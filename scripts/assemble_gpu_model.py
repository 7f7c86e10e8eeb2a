"""A complete pipeline folder from a generator trained elsewhere (the lent GPU of scripts/gpu_train256.sh).

The device brings back only the generator (float16) and the run's config: its other parts are the
shipped default's (frozen autoencoder and part guide) or are rebuilt here from the full-quality
dataset (latent banks of every extractor's sketches, palettes), exactly as the run's own export
builds them. The guided stage is constructed with the generator as ``init_generator`` and asked
to export without a training step, so the folder is what the run would have written.

    python scripts/assemble_gpu_model.py ~/s2a-runs/gpu256/generator ~/s2a-runs/gpu256/config.toml \\
        ~/s2a-runs/gpu256-model --data ~/s2a-runs/data/faces256
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sketch2anime.config import ConfigError  # noqa: E402
from sketch2anime.pipeline_format import has_parts  # noqa: E402
from sketch2anime.training.config import load_experiment  # noqa: E402
from sketch2anime.training.loop import setup_engine  # noqa: E402
from sketch2anime.training.run import STAGES  # noqa: E402

DEFAULT = REPO / "src" / "sketch2anime" / "pretrained" / "default"


def quoted(value: Path) -> str:
    """A path as a TOML string for a ``--set`` override."""
    return json.dumps(str(Path(value).expanduser()))


def assemble(generator: Path, config_toml: Path, out: Path, data: Path, parts_from: Path = DEFAULT) -> Path:
    """Export ``out`` (a pipeline folder) with the weights of ``generator`` (a model folder)."""
    generator, out, parts_from = Path(generator).expanduser(), Path(out).expanduser(), Path(parts_from).expanduser()
    meta = json.loads((generator / "config.json").read_text(encoding="utf-8")).get("meta", {})
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; give a new folder")
    with tempfile.TemporaryDirectory(prefix="assemble-") as scratch:
        config = load_experiment(config_toml, [
            f"experiment.init_generator={quoted(generator)}", f"data.root={quoted(data)}",
            f"experiment.autoencoder_dir={quoted(parts_from)}",
            f"experiment.parts_dir={quoted(parts_from) if has_parts(parts_from) else json.dumps('')}",
            f"experiment.output_dir={quoted(Path(scratch) / 'run')}",
            "train.device=\"cpu\"", "train.precision=\"fp32\"", "data.num_workers=0",
        ])
        if config.experiment.stage != "guided":
            raise ValueError(f"{config_toml} is a {config.experiment.stage!r} run; only guided runs are assembled")
        engine = setup_engine(config.train)
        stage = STAGES["guided"](config, engine, Path(scratch) / "run")
        stage.step = int(meta.get("step", 0))
        stage.export(out, final=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("generator", type=Path, help="model folder: config.json + model.safetensors")
    parser.add_argument("config", type=Path, help="the run's config.toml")
    parser.add_argument("out", type=Path, help="a new folder for the pipeline")
    parser.add_argument("--data", type=Path, required=True, help="the prepared dataset the run trained on")
    parser.add_argument("--parts-from", type=Path, default=DEFAULT,
                        help="pipeline folder with the frozen autoencoder and part guide, if any (default: shipped)")
    args = parser.parse_args(argv)
    try:
        folder = assemble(args.generator, args.config, args.out, args.data, args.parts_from)
    except (ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"pipeline folder: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
