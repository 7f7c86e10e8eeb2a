"""Write a small synthetic "episode" for trying ``sketch2anime frames`` (numbers in the README).

It uses only the MIT-licensed Ren'Py sprites in tests/assets/sprites over drawn backgrounds, so the
result can be shared: 16:9 shots letterboxed into a 4:3 frame, with held shots, pans, zooms, a fast
pan with motion blur, fades to and from black, cuts back to earlier shots, a title card and
scrolling end credits. Deterministic (seeded); the shot list is printed and saved next to the video.

    python scripts/make_demo_video.py demo/episode.mp4          # mp4v in MP4 (default)
    python scripts/make_demo_video.py demo/episode.avi --codec MJPG
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SPRITES = sorted((REPO / "tests" / "assets" / "sprites").glob("*.png"))
FPS = 24
W, H = 640, 360  # the picture; the file is 640x480 with black bars above and below
BAR = 60


def background(rng: np.random.Generator, width: int) -> np.ndarray:
    """A vertical two-colour gradient with a few blocks and discs ("scenery")."""
    top, bottom = rng.integers(40, 230, 3), rng.integers(40, 230, 3)
    ramp = np.linspace(0, 1, H)[:, None, None]
    image = (top * (1 - ramp) + bottom * ramp).repeat(width, axis=1).astype(np.uint8)
    image = np.ascontiguousarray(image)
    for _ in range(int(rng.integers(4, 9))):
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, H))
        if rng.random() < 0.5:
            cv2.rectangle(image, (x, y), (x + int(rng.integers(30, 160)), y + int(rng.integers(20, 120))), colour, -1)
        else:
            cv2.circle(image, (x, y), int(rng.integers(10, 60)), colour, -1, cv2.LINE_AA)
        cv2.rectangle(image, (x, y), (x + 2, H), (30, 30, 30), -1)  # a line for the blur filter to see
    return image


def place_sprite(canvas: np.ndarray, sprite_index: int, x: float, scale: float) -> np.ndarray:
    image = Image.fromarray(canvas)
    sprite = Image.open(SPRITES[sprite_index]).convert("RGBA")
    height = int(H * scale)
    width = int(sprite.width * height / sprite.height)
    sprite = sprite.resize((width, height), Image.LANCZOS)
    image.paste(sprite, (int(x * (canvas.shape[1] - width)), H - int(height * 0.9)), sprite)
    return np.asarray(image)


def shot_frames(kind: str, seed: int, seconds: float) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    count = int(round(seconds * FPS))
    sprite, x, scale = int(rng.integers(len(SPRITES))), float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.7, 1.1))
    if kind in ("pan", "blurpan"):
        wide = place_sprite(background(rng, 2 * W), sprite, x, scale)
        speed = 1.0 if kind == "pan" else 4.0
        offsets = [min(W, int(speed * W * j / max(count - 1, 1))) for j in range(count)]
        frames = [wide[:, o:o + W] for o in offsets]
        if kind == "blurpan":  # a fast camera move smears horizontally
            kernel = np.full((1, 25), 1 / 25, np.float32)
            frames = [cv2.filter2D(f, -1, kernel) for f in frames]
        return frames
    still = place_sprite(background(rng, W), sprite, x, scale)
    if kind == "zoom":
        frames = []
        for j in range(count):
            z = 1 + 0.3 * j / max(count - 1, 1)
            crop = still[int(H * (1 - 1 / z) / 2):, int(W * (1 - 1 / z) / 2):][:int(H / z), :int(W / z)]
            frames.append(cv2.resize(crop, (W, H), interpolation=cv2.INTER_LINEAR))
        return frames
    return [still] * count


def text_frames(lines: list[str], seconds: float, colour: tuple[int, int, int], scroll: bool) -> list[np.ndarray]:
    count = int(round(seconds * FPS))
    sheet = np.zeros((H + 40 * len(lines) + (H if scroll else 0), W, 3), np.uint8)
    sheet[:] = colour
    start = H if scroll else (H - 40 * len(lines)) // 2
    for k, line in enumerate(lines):
        cv2.putText(sheet, line, (60, start + 40 * k + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (235, 235, 235), 2, cv2.LINE_AA)
    if not scroll:
        return [sheet[:H]] * count
    travel = sheet.shape[0] - H
    return [sheet[int(travel * j / max(count - 1, 1)):][:H] for j in range(count)]


def fade(frames: list[np.ndarray], seconds: float, out: bool) -> list[np.ndarray]:
    n = int(round(seconds * FPS))
    result = list(frames)
    for j in range(min(n, len(frames))):
        level = (n - j - 1) / n if out else (j + 1) / n
        index = len(frames) - n + j if out else j
        result[index] = (frames[index].astype(np.float32) * level).astype(np.uint8)
    return result


def episode() -> tuple[list[np.ndarray], list[dict]]:
    plan = [("title", 2.0), ("still", 3.0), ("pan", 3.0), ("still", 2.0), ("zoom", 2.5), ("blurpan", 1.5),
            ("still", 2.5), ("fadeout", 0), ("black", 1.0), ("fadein", 0), ("pan", 3.0), ("repeat:1", 2.0),
            ("still", 1.5), ("zoom", 3.0), ("still", 2.0), ("blurpan", 1.0), ("pan", 4.0), ("repeat:6", 1.5),
            ("still", 3.5), ("fadeout", 0), ("credits", 6.0)]
    frames: list[np.ndarray] = []
    shots: list[dict] = []
    seeds: dict[int, tuple[str, int, float]] = {}
    for number, (kind, seconds) in enumerate(plan):
        if kind == "fadeout":
            frames[-FPS:] = fade(frames[-FPS:], 1.0, out=True)
            shots[-1]["fade_out_s"] = 1.0
            continue
        if kind == "fadein":
            continue  # applied to the next shot
        if kind == "title":
            content = text_frames(["A sketch2anime demo", "Episode 1", "(MIT sprites from Ren'Py)"], seconds,
                                  (30, 40, 90), scroll=False)
        elif kind == "credits":
            names = ["Sprites  Tom Rothamel (MIT)", "Backgrounds  random", "Camera  numpy", "Editing  OpenCV",
                     "Colour  a seed", "Music  silence", "Thanks  the reader"]
            content = text_frames(names * 2, seconds, (0, 0, 0), scroll=True)
        elif kind == "black":
            content = [np.zeros((H, W, 3), np.uint8)] * int(seconds * FPS)
        else:
            if kind.startswith("repeat:"):
                base, seed, _ = seeds[int(kind.split(":")[1])]
                content = shot_frames(base, seed, seconds)
            else:
                seeds[number] = (kind, 100 + number, seconds)
                content = shot_frames(kind, 100 + number, seconds)
            if plan[number - 1][0] == "fadein":
                content = fade(content, 0.5, out=False)
        shots.append({"shot": len(shots), "kind": kind, "start_frame": len(frames),
                      "start_s": round(len(frames) / FPS, 3), "seconds": seconds})
        frames.extend(content)
    return frames, shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="video file to write (.mp4 or .avi)")
    parser.add_argument("--codec", default="mp4v", help="FourCC: mp4v (MP4), MJPG (AVI), ... (default mp4v)")
    args = parser.parse_args()
    frames, shots = episode()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter_fourcc(*args.codec), FPS, (W, H + 2 * BAR))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {args.codec} to {args.out}")
    for frame in frames:
        writer.write(cv2.cvtColor(np.pad(frame, ((BAR, BAR), (0, 0), (0, 0))), cv2.COLOR_RGB2BGR))
    writer.release()
    args.out.with_suffix(".shots.json").write_text(json.dumps(shots, indent=1) + "\n")
    print(f"wrote {args.out}: {len(frames)} frames, {len(frames) / FPS:.1f} s at {FPS} fps, {len(shots)} shots "
          f"(list in {args.out.with_suffix('.shots.json')})")


if __name__ == "__main__":
    main()
