"""sketch2anime frames: real videos written with OpenCV from the MIT sprites (shots, held frames,
a pan, a fade to black, a blurred stretch, a repeated shot, credits, letterbox bars)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import SPRITES
from sketch2anime.cli import main as cli_main
from sketch2anime.data import frames as frames_mod
from sketch2anime.data.faces import FaceBox
from sketch2anime.data.frame_filters import FrameFilterConfig, is_mostly_text, judge_frame, letterbox_box, sharpness
from sketch2anime.data.frames import FramesConfig, extract_frames
from sketch2anime.data.frames_report import JOURNAL_FILE, Journal
from sketch2anime.data.scenes import ShotSelection
from sketch2anime.data.video import Every, parse_time

FPS = 12
W, H, BAR = 320, 180, 30  # picture size; black bars above and below it in the file


def sprite_frame(i: int, bg: tuple[int, int, int], x: float = 0.5) -> np.ndarray:
    canvas = Image.new("RGB", (W, H), bg)
    sprite = Image.open(sorted(SPRITES.glob("*.png"))[i]).convert("RGBA")
    height = int(H * 0.95)
    width = int(sprite.width * height / sprite.height)
    sprite = sprite.resize((width, height), Image.LANCZOS)
    canvas.paste(sprite, (int(x * (W - width)), H - height), sprite)
    return np.asarray(canvas)


def credits_frame() -> np.ndarray:
    frame = np.zeros((H, W, 3), np.uint8)
    for k, line in enumerate(["Director  A. Someone", "Animation  Studio X", "Music  B. Composer",
                              "Key animation  C. D.", "Colour  F. G. H."]):
        cv2.putText(frame, line, (20, 30 + 30 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return frame


def timeline() -> tuple[list[np.ndarray], dict[str, tuple[int, int]]]:
    """Frames and the true shots (name -> first, last frame) of the 11 s test video at 12 fps."""
    frames: list[np.ndarray] = []
    shots: dict[str, tuple[int, int]] = {}

    def shot(name: str, content: list[np.ndarray]) -> None:
        shots[name] = (len(frames), len(frames) + len(content) - 1)
        frames.extend(content)

    red = sprite_frame(0, (200, 60, 60))
    green = sprite_frame(2, (70, 170, 90))
    yellow = sprite_frame(3, (230, 210, 80))
    shot("held", [red] * 24)
    shot("pan", [sprite_frame(1, (60, 90, 200), x=j / 23) for j in range(24)])
    shot("fade", [green] * 18 + [(green * (1 - (j + 1) / 12)).astype(np.uint8) for j in range(12)])
    shot("black", [np.zeros((H, W, 3), np.uint8)] * 6)
    shot("blur", [yellow] * 12 + [cv2.GaussianBlur(yellow, (0, 0), 2.0)] * 12)
    shot("repeat", [red] * 12)  # a cut back to the first shot: duplicates across the run
    shot("credits", [credits_frame()] * 12)
    return frames, shots


def write_video(path: Path, frames: list[np.ndarray], fourcc: str = "MJPG") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (W, H + 2 * BAR))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    for frame in frames:
        writer.write(cv2.cvtColor(np.pad(frame, ((BAR, BAR), (0, 0), (0, 0))), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    frames, _ = timeline()
    return {"avi": write_video(folder / "episode.avi", frames),
            "mp4": write_video(folder / "episode_mp4v.mp4", frames, "mp4v")}


def run(src: Path, out: Path, **kwargs) -> dict:
    return extract_frames(src, out, FramesConfig(**kwargs), progress=False)


def by_frame(video: dict) -> dict[int, dict]:
    return {f["frame"]: f for f in video["kept_frames"] + video["dropped_frames"]}


def test_shots_duplicates_black_blur_and_report(videos, tmp_path: Path) -> None:
    report = run(videos["avi"], tmp_path / "out")
    _, truth = timeline()
    video = report["videos"][0]
    assert video["status"] == "complete" and video["decoded"] == 132
    # One frame group per shot: the detected shots start where the true ones do (the black shot
    # begins a little early, as soon as the fade is dark enough).
    starts = [s["start_frame"] for s in video["shot_list"]]
    assert len(starts) == len(truth)
    for start, (name, (first, _)) in zip(starts, truth.items()):
        assert abs(start - first) <= (3 if name == "black" else 0), name
    shot_of = {name: i for i, name in enumerate(truth)}
    kept_per_shot = {name: [k for k in video["kept_frames"] if k["shot"] == shot_of[name]] for name in truth}
    assert [len(kept_per_shot[n]) for n in truth] == [1, 3, 1, 0, 1, 0, 0]
    for kept in video["kept_frames"]:
        shot = video["shot_list"][kept["shot"]]
        assert shot["start_frame"] <= kept["frame"] <= shot["end_frame"]
    frames = by_frame(video)
    # Held frames: one kept, the other samples of the held shot (and of the repeated shot) are duplicates of it.
    assert [frames[i]["reason"] for i in (6, 12, 18, 108, 114)] == ["duplicate"] * 5
    assert all("frame 0 " in frames[i]["duplicate_of"] for i in (6, 108))
    # Fade and black frames dropped; blurred frames dropped, the sharp start of that shot kept.
    assert {frames[i]["reason"] for i in (66, 72)} <= {"fade", "black"}
    assert [frames[i]["reason"] for i in (76, 82)] == ["black", "black"]
    assert [frames[i]["reason"] for i in (96, 102)] == ["blurred", "blurred"]
    assert [frames[i]["reason"] for i in (120, 126)] == ["text", "text"]
    assert report["counts"]["dropped_by_reason"] == {"black": 2, "blurred": 2, "duplicate": 8, "fade": 2,
                                                     "shot_limit": 1, "text": 2}
    # Timestamps of every sampled frame; letterbox bars cropped from the written files.
    for frame in frames.values():
        assert frame["time_s"] == pytest.approx(frame["frame"] / FPS, abs=1e-3)
    files = sorted((tmp_path / "out" / "frames").rglob("*.png"))
    assert len(files) == report["counts"]["kept"] == 6
    assert all(Image.open(f).size == (W, H) for f in files)
    assert video["kept_frames"][0]["crop"] == [0, BAR, W, BAR + H]
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["counts"] == report["counts"]


def test_mp4v_gives_the_same_shots(videos, tmp_path: Path) -> None:
    avi = run(videos["avi"], tmp_path / "a")["videos"][0]
    mp4 = run(videos["mp4"], tmp_path / "m")["videos"][0]
    assert [s["start_frame"] for s in mp4["shot_list"]] == [s["start_frame"] for s in avi["shot_list"]]
    assert [k["frame"] for k in mp4["kept_frames"]] == [k["frame"] for k in avi["kept_frames"]]


def test_truncated_and_unreadable_videos_keep_what_was_extracted(videos, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    data = videos["avi"].read_bytes()
    (folder / "a_cut.avi").write_bytes(data[:int(len(data) * 0.55)])
    mp4 = videos["mp4"].read_bytes()
    (folder / "b_cut.mp4").write_bytes(mp4[:len(mp4) // 2])  # an MP4 cut short loses its index
    (folder / "c_whole.avi").write_bytes(data)
    report = run(folder, tmp_path / "out")
    status = {v["name"]: v for v in report["videos"]}
    assert status["a_cut"]["status"] == "truncated" and "truncated" in status["a_cut"]["message"]
    assert 0 < status["a_cut"]["decoded"] < 132 and status["a_cut"]["kept"] == 5  # held, pan, fade shots
    assert status["b_cut"]["status"] == "unreadable" and "cannot be opened" in status["b_cut"]["message"]
    assert status["c_whole"]["status"] == "complete"
    assert len(list((tmp_path / "out" / "frames" / "a_cut").glob("*.png"))) == 5
    # The whole copy repeats the cut one: across the run, every frame kept from it is a duplicate. New
    # are the blur shot's sharp frame and the pan frame the cut copy left out for its per-shot limit.
    assert [k["frame"] for k in status["c_whole"]["kept_frames"]] == [30, 84]
    assert report["counts"]["truncated"] == 1
    # Re-running does not redo finished or broken videos.
    again = run(folder, tmp_path / "out")
    assert again["decoded_this_run"] == 0 and again["counts"] == report["counts"]


def test_damage_in_the_middle_is_skipped(videos, tmp_path: Path) -> None:
    data = bytearray(videos["mp4"].read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4000] = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    (tmp_path / "damaged.mp4").write_bytes(bytes(data))
    video = run(tmp_path / "damaged.mp4", tmp_path / "out")["videos"][0]
    assert video["status"] == "damaged" and "skipped damaged stretches" in video["message"]
    ((_, gap_to),) = video["gaps"]
    kept_after = [k for k in video["kept_frames"] if k["time_s"] >= gap_to]
    assert kept_after and kept_after[0]["frame"] == pytest.approx(kept_after[0]["time_s"] * FPS, abs=0.01)


def test_resume_after_interruption_matches_one_run(videos, tmp_path: Path, monkeypatch) -> None:
    whole = run(videos["avi"], tmp_path / "whole")["videos"][0]
    original = Journal.append
    calls = {"n": 0}

    def flaky(self, row):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        original(self, row)

    monkeypatch.setattr(Journal, "append", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(videos["avi"], tmp_path / "out")
    monkeypatch.setattr(Journal, "append", original)
    rows = [json.loads(line) for line in (tmp_path / "out" / JOURNAL_FILE).read_text().splitlines()]
    assert [r["shot"] for r in rows] == [0, 1]
    resumed = run(videos["avi"], tmp_path / "out")
    video = resumed["videos"][0]
    assert resumed["decoded_this_run"] < 132  # continued after shot 1 instead of starting over
    assert [k["frame"] for k in video["kept_frames"]] == [k["frame"] for k in whole["kept_frames"]]
    assert video["decoded"] == whole["decoded"]
    assert len(list((tmp_path / "out" / "frames").rglob("*.png"))) == len(whole["kept_frames"])


def test_sampling_rate_and_time_range(videos, tmp_path: Path) -> None:
    seconds = run(videos["avi"], tmp_path / "s", every="0.5s")["videos"][0]
    frames = run(videos["avi"], tmp_path / "f", every="6")["videos"][0]
    assert sorted(by_frame(seconds)) == sorted(by_frame(frames))
    ranged = run(videos["avi"], tmp_path / "r", every="1s", start_s=2.0, end_s=9.0)["videos"][0]
    times = [f["time_s"] for f in by_frame(ranged).values()]
    assert min(times) >= 2.0 and max(times) < 9.0
    assert ranged["decoded"] < 100  # seeked to the start instead of decoding from 0
    assert [s["start_frame"] for s in ranged["shot_list"]][:2] == [24, 48]


def test_face_crops_with_an_injected_detector(videos, tmp_path: Path) -> None:
    def detector(image: Image.Image) -> list[FaceBox]:
        return [FaceBox(140, 40, 40, 40, 0.9), FaceBox(0, 0, 10, 10, 0.5)]  # the second is too small

    report = extract_frames(videos["avi"], tmp_path / "out", FramesConfig(faces=True, min_face_side=32),
                            progress=False, face_detector=detector)
    crops = sorted((tmp_path / "out" / "faces").rglob("*.png"))
    assert len(crops) == report["counts"]["faces"] == report["counts"]["kept"] == 6
    assert Image.open(crops[0]).size == (60, 60)  # 1.5 x the 40 px box, square
    assert report["videos"][0]["kept_frames"][0]["faces"][0]["box"] == [130, 30, 190, 90]


def test_faces_without_the_detector_fail_before_decoding(videos, tmp_path: Path) -> None:
    try:
        frames_mod.faces_mod.check_animeface_available()
    except ValueError:
        with pytest.raises(ValueError, match="animeface"):
            run(videos["avi"], tmp_path / "out", faces=True)
        assert not (tmp_path / "out").exists()
    else:
        pytest.skip("animeface is installed and usable here")


def test_output_folder_settings_are_checked(videos, tmp_path: Path) -> None:
    run(videos["avi"], tmp_path / "out", every="1s")
    with pytest.raises(ValueError, match="other settings.*every"):
        run(videos["avi"], tmp_path / "out", every="0.5s")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        run(videos["avi"], tmp_path / "foreign")


def test_cli_and_prepare_uses_the_frames(videos, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert cli_main(["frames", str(videos["avi"]), str(out), "--no-progress", "--every", "500ms"]) == 0
    printed = capsys.readouterr().out
    assert "kept 6 of 23 sampled frames" in printed and "duplicate 8" in printed
    assert cli_main(["frames", str(videos["avi"]), str(tmp_path / "x"), "--every", "soon"]) == 2
    assert "--every must look like" in capsys.readouterr().err
    assert cli_main(["prepare", str(out / "frames"), str(tmp_path / "ds"), "--extractor", "xdog",
                     "--workers", "1", "--no-progress"]) == 0
    assert len(list((tmp_path / "ds" / "color").glob("*.png"))) == 6


def test_parsers() -> None:
    assert Every.parse("1s") == Every(seconds=1.0) and Every.parse("250ms") == Every(seconds=0.25)
    assert Every.parse("12") == Every(frames=12) == Every.parse("12f")
    for bad in ("", "-1s", "1.5", "soon", "0s"):
        with pytest.raises(ValueError):
            Every.parse(bad)
    assert parse_time("90") == parse_time("1:30") == parse_time("0:01:30") == parse_time("90s") == 90.0
    for bad in ("1:70", "x", "1::2", "-3"):
        with pytest.raises(ValueError):
            parse_time(bad)
    with pytest.raises(ValueError, match="after start"):
        FramesConfig(start_s=10, end_s=5)


def test_shot_selection_spreads_in_bounded_memory() -> None:
    selection: ShotSelection[int] = ShotSelection(3)
    for item in range(100):
        selection.offer(item)
        assert len(selection.held) <= 6
    chosen, dropped = selection.finish()
    assert len(chosen) == 3 and chosen[0] == 0 and chosen[-1] >= 64 and len(chosen) + len(dropped) <= 6


def test_filters_on_single_frames() -> None:
    config = FrameFilterConfig()
    sharp = sprite_frame(1, (60, 90, 200))
    assert judge_frame(sharp, config).reason == ""
    assert sharpness(cv2.cvtColor(sharp, cv2.COLOR_RGB2GRAY)) > 3 * sharpness(
        cv2.cvtColor(cv2.GaussianBlur(sharp, (0, 0), 1.0), cv2.COLOR_RGB2GRAY))
    pillarbox = np.pad(sharp, ((0, 0), (40, 40), (0, 0)))
    assert letterbox_box(cv2.cvtColor(pillarbox, cv2.COLOR_RGB2GRAY), 24, 0.3) == (40, 0, 40 + W, H)
    assert is_mostly_text(cv2.cvtColor(credits_frame(), cv2.COLOR_RGB2GRAY))
    assert not is_mostly_text(cv2.cvtColor(sharp, cv2.COLOR_RGB2GRAY))
    motion = cv2.filter2D(sharp, -1, np.full((1, 15), 1 / 15, np.float32))  # a fast horizontal camera move
    assert judge_frame(motion, config).reason == "blurred"
    assert judge_frame(np.full((H, W, 3), 128, np.uint8), config).reason == "flat"
    assert judge_frame(sharp, config, in_fade=True).reason == "fade"
