"""Training stages on a tiny prepared dataset: losses, latent bank, export, resume, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import draw_face
from sketch2anime.checkpoint import load_training_state, read_tensors
from sketch2anime.config import ConfigError
from sketch2anime.data.manifest import read_manifest
from sketch2anime.data.prepare import PrepareConfig, prepare_dataset
from sketch2anime.inference import Sketch2AnimePipeline
from sketch2anime.models.projection import LatentBank
from sketch2anime.training.config import load_experiment
from sketch2anime.training.run import run_experiment, train_experiment

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("faces")
    for i in range(12):
        draw_face(64, i).save(source / f"face_{i:02d}.png")
    out = tmp_path_factory.mktemp("data") / "tiny"
    prepare_dataset(source, out, PrepareConfig(size=64, extractors=("detail", "xdog"), val_fraction=0.2, workers=1),
                    progress=False)
    return out


def _config(name: str, dataset: Path, out: Path, *extra: str):
    return load_experiment(CONFIGS / name, [f"data.root={json.dumps(str(dataset))}",
                                            f"experiment.output_dir={json.dumps(str(out))}", *extra])


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def autoencoder_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stage 1 trained for 30 steps (shared by the stage-2 tests)."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs") / "ae"
    train_experiment(_config("test_autoencoder.toml", tiny_dataset, out, "train.steps=30", "train.log_every=1",
                             "train.sample_every=15", "train.checkpoint_every=15"))
    return out


def test_autoencoder_learns_and_writes_bank(autoencoder_run: Path, tiny_dataset: Path) -> None:
    records = _metrics(autoencoder_run)
    assert [r["step"] for r in records] == list(range(1, 31))
    losses = [r["loss"] for r in records]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.05
    for key in ("l1", "lr", "images_per_s", "time"):
        assert key in records[-1]

    model = autoencoder_run / "model"
    pipeline = json.loads((model / "pipeline.json").read_text())
    assert pipeline["pipeline_type"] == "autoencoder" and pipeline["image_size"] == 64
    assert (model / "autoencoder" / "config.json").is_file()
    bank = LatentBank.load(model / "latent_bank")
    train_records = [r for r in read_manifest(tiny_dataset) if r.split == "train"]
    assert len(bank) == 2 * len(train_records)  # clean sketch of each extractor
    assert set(bank.ids) == {f"{r.id}/{e}" for r in train_records for e in ("detail", "xdog")}
    assert bank.dim == 32
    grid = Image.open(autoencoder_run / "samples" / "step_0000030.png")
    assert grid.width == 4 * 64 + 5 * 2  # input | rough | reconstruction | target
    assert (autoencoder_run / "state" / "train.json").is_file()


def test_generator_stage_exports_a_standalone_pipeline(autoencoder_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "s2a"
    config = _config("test_generator.toml", tiny_dataset, out, f"experiment.autoencoder_dir={json.dumps(str(autoencoder_run))}")
    train_experiment(config)
    records = _metrics(out)
    assert records[-1]["step"] == 4
    for key in ("d_loss", "g_adv", "l1", "fm", "hint", "r1"):
        assert np.isfinite(records[-1][key]), key
    model = out / "model"
    assert json.loads((model / "pipeline.json").read_text())["pipeline_type"] == "sketch2anime"
    for part in ("autoencoder/model.safetensors", "generator/model.safetensors", "latent_bank.safetensors", "latent_bank.json"):
        assert (model / part).is_file(), part
    grid = Image.open(out / "samples" / "step_0000004.png")
    assert grid.width == 5 * 64 + 6 * 2  # sketch | hint | projected | output | target

    # The folder stands alone: move the stage-1 run away and load it with no other argument.
    autoencoder_run.rename(autoencoder_run.with_name("moved"))
    try:
        pipe = Sketch2AnimePipeline.from_pretrained(model, device="cpu")
        sketch = np.full((48, 80), 255, np.uint8)
        sketch[10:40, 20:22] = 0
        picture, projected = pipe(sketch, return_projected=True)
        assert picture.size == (80, 48) and picture.mode == "RGB"
        assert projected.size == (80, 48) and projected.mode == "L"

        # save_pretrained mirrors from_pretrained: the very files training exported, the same pictures.
        saved = pipe.save_pretrained(tmp_path / "saved")
        files = sorted(p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file())
        for name in files:
            assert (model / name).read_bytes() == (saved / name).read_bytes(), name
        again = Sketch2AnimePipeline.from_pretrained(saved, device="cpu")
        for seed in (None, 5):
            assert np.array_equal(np.asarray(pipe(sketch, projection=0.7, seed=seed)),
                                  np.asarray(again(sketch, projection=0.7, seed=seed)))
        assert all(np.array_equal(np.asarray(a), np.asarray(b))
                   for a, b in zip(pipe.variations(sketch, count=3), again.variations(sketch, count=3)))
    finally:
        autoencoder_run.with_name("moved").rename(autoencoder_run)


def test_simple_gan_stage(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "sg"
    train_experiment(_config("test_simple_gan.toml", tiny_dataset, out))
    records = _metrics(out)
    assert [r["step"] for r in records] == [2, 4]
    assert json.loads((out / "model" / "pipeline.json").read_text())["pipeline_type"] == "simple_gan"
    pipe = Sketch2AnimePipeline.from_pretrained(out, device="cpu")  # run folder accepted too
    assert pipe.pipeline_type == "simple_gan"
    assert pipe(np.full((64, 64), 255, np.uint8)).size == (64, 64)


def test_generator_stage_needs_a_finished_autoencoder(tiny_dataset: Path, tmp_path: Path) -> None:
    config = _config("test_generator.toml", tiny_dataset, tmp_path / "g",
                     f"experiment.autoencoder_dir={json.dumps(str(tmp_path / 'nothing'))}")
    with pytest.raises(ConfigError, match="autoencoder_dir"):
        train_experiment(config)


def test_perceptual_loss_without_weights_fails_at_start(tiny_dataset: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKETCH2ANIME_HOME", str(tmp_path / "empty-cache"))
    config = _config("test_simple_gan.toml", tiny_dataset, tmp_path / "p", "train.perceptual_weight=1.0")
    with pytest.raises(ValueError, match="sketch2anime weights hed"):
        train_experiment(config)
    assert not (tmp_path / "p" / "metrics.jsonl").exists()


def test_same_seed_gives_identical_losses(tiny_dataset: Path, tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        train_experiment(_config("test_simple_gan.toml", tiny_dataset, tmp_path / name, "train.log_every=1"))
        runs.append([{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in _metrics(tmp_path / name)])
    assert runs[0] == runs[1]
    train_experiment(_config("test_simple_gan.toml", tiny_dataset, tmp_path / "c", "train.log_every=1",
                             "experiment.seed=1"))
    other = [r["g_loss"] for r in _metrics(tmp_path / "c")]
    assert other != [r["g_loss"] for r in runs[0]]


class Crash(Exception):
    pass


def _crash_at(step: int):
    def callback(done: int) -> None:
        if done == step:
            raise Crash(f"simulated kill after step {step}")
    return callback


def _final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    index = json.loads((run_dir / "state" / "train.json").read_text())
    return read_tensors(run_dir / "state" / index["tensors_file"])


@pytest.mark.parametrize("config_name, extra", [
    ("test_autoencoder.toml", ("train.ema_decay=0.9", "train.lr_schedule=cosine", "train.warmup_steps=2")),
    ("test_generator.toml", ()),
])
def test_resume_after_a_kill_matches_an_uninterrupted_run(config_name: str, extra: tuple[str, ...],
                                                          autoencoder_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    # 3 epochs of 2 batches: the kill lands mid-epoch and resuming must skip the right batches.
    settings = ["train.steps=7", "train.checkpoint_every=3", "train.log_every=1", "train.sample_every=100",
                f"experiment.autoencoder_dir={json.dumps(str(autoencoder_run))}", *extra]
    full = tmp_path / "full"
    train_experiment(_config(config_name, tiny_dataset, full, *settings))

    broken = tmp_path / "broken"
    with pytest.raises(Crash):
        train_experiment(_config(config_name, tiny_dataset, broken, *settings), callback=_crash_at(5))
    assert load_training_state(broken / "state" / "train")["step"] == 3
    # Without --resume the half-finished run is not overwritten.
    with pytest.raises(ConfigError, match="--resume"):
        train_experiment(_config(config_name, tiny_dataset, broken, *settings))
    train_experiment(_config(config_name, tiny_dataset, broken, *settings), resume=True)

    expected, got = _final_state(full), _final_state(broken)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in rows]  # noqa: E731
    assert strip(_metrics(broken)) == strip(_metrics(full))  # lines past the restored step were dropped
    name = "autoencoder" if config_name == "test_autoencoder.toml" else "generator"
    assert read_tensors(full / "model" / name / "model.safetensors").keys() == \
        read_tensors(broken / "model" / name / "model.safetensors").keys()
    for key, value in read_tensors(full / "model" / name / "model.safetensors").items():
        assert torch.equal(value, read_tensors(broken / "model" / name / "model.safetensors")[key])


def test_resume_continues_to_more_steps_and_refuses_model_changes(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "more"
    train_experiment(_config("test_simple_gan.toml", tiny_dataset, out, "train.steps=2"))
    train_experiment(_config("test_simple_gan.toml", tiny_dataset, out, "train.steps=4"), resume=True)
    assert [r["step"] for r in _metrics(out)] == [2, 4]
    with pytest.raises(ConfigError, match="generator"):
        train_experiment(_config("test_simple_gan.toml", tiny_dataset, out, "train.steps=6",
                                 "generator.base_channels=4"), resume=True)
    # A run saved before a setting existed (here the discriminator's scales) resumes at its default,
    # and still refuses a real change of it.
    saved = json.loads((out / "config.json").read_text())
    assert saved["discriminator"].pop("scales") == 1
    (out / "config.json").write_text(json.dumps(saved))
    train_experiment(_config("test_simple_gan.toml", tiny_dataset, out, "train.steps=6"), resume=True)
    assert [r["step"] for r in _metrics(out)] == [2, 4, 6]
    saved["discriminator"].pop("scales", None)
    (out / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="discriminator.scales"):
        train_experiment(_config("test_simple_gan.toml", tiny_dataset, out, "train.steps=8",
                                 "discriminator.scales=2"), resume=True)


@pytest.mark.parametrize("config_name", ["test_autoencoder.toml", "test_simple_gan.toml"])
def test_resuming_a_finished_run_keeps_its_export(config_name: str, tiny_dataset: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "done"
    train_experiment(_config(config_name, tiny_dataset, out, "train.steps=2"))
    exported = {p: p.stat().st_mtime_ns for p in (out / "model").rglob("*") if p.is_file()}
    assert json.loads((out / "model" / "pipeline.json").read_text())["training"]["final"] is True
    capsys.readouterr()
    train_experiment(_config(config_name, tiny_dataset, out, "train.steps=2"), resume=True)
    assert "already finished at step 2" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in (out / "model").rglob("*") if p.is_file()} == exported
    # An export that never completed (no pipeline.json) is redone.
    (out / "model" / "pipeline.json").unlink()
    train_experiment(_config(config_name, tiny_dataset, out, "train.steps=2"), resume=True)
    assert (out / "model" / "pipeline.json").is_file()


def test_snapshots_keep_the_model_of_every_nth_step_across_a_resume(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "snap"
    settings = ("train.checkpoint_every=3", "train.snapshot_every=2", "train.sample_every=100")
    train_experiment(_config("test_simple_gan.toml", tiny_dataset, out, "train.steps=3", *settings))
    # Step 2 is no checkpoint: its snapshot must still be step 2's weights, not step 3's or 0's.
    train_experiment(_config("test_simple_gan.toml", tiny_dataset, out, "train.steps=4", *settings), resume=True)
    snapshots = out / "snapshots"
    assert sorted(p.name for p in snapshots.iterdir()) == ["step_0000002", "step_0000004"]

    def weights(folder: Path) -> dict[str, torch.Tensor]:
        return read_tensors(folder / "generator" / "model.safetensors")

    steps = {name: json.loads((snapshots / name / "pipeline.json").read_text())["training"]["step"]
             for name in ("step_0000002", "step_0000004")}
    assert steps == {"step_0000002": 2, "step_0000004": 4}
    final, second = weights(out / "model"), weights(snapshots / "step_0000002")
    assert all(torch.equal(final[k], v) for k, v in weights(snapshots / "step_0000004").items())
    assert any(not torch.equal(final[k], v) for k, v in second.items())
    picture = Sketch2AnimePipeline.from_pretrained(snapshots / "step_0000002")(Image.new("L", (64, 64), 255))
    assert picture.size == (64, 64)
    with pytest.raises(ConfigError, match="snapshot_every"):
        _config("test_simple_gan.toml", tiny_dataset, out, "train.snapshot_every=-1")


def test_max_minutes_stops_cleanly_at_the_budget_and_resume_finishes(tiny_dataset: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Each step costs 30 s of a fake clock: a 1.5-minute budget stops after step 4 of 6, saved and exported."""
    from types import SimpleNamespace

    from sketch2anime.training import loop

    now = [0.0]
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: now[0]))

    def thirty_seconds(step: int) -> None:
        now[0] += 30.0

    out = tmp_path / "budget"
    settings = ("train.steps=6", "train.max_minutes=1.5", "train.checkpoint_every=100", "train.log_every=100",
                "train.sample_every=100")
    train_experiment(_config("test_simple_gan.toml", tiny_dataset, out, *settings), callback=thirty_seconds)
    assert load_training_state(out / "state" / "train")["step"] == 4
    training = json.loads((out / "model" / "pipeline.json").read_text())["training"]
    assert training["step"] == 4 and training["final"] is False
    assert [r["step"] for r in _metrics(out)] == [4]
    assert "stopped at step 4 of 6" in capsys.readouterr().err
    train_experiment(_config("test_simple_gan.toml", tiny_dataset, out, *settings), resume=True)
    training = json.loads((out / "model" / "pipeline.json").read_text())["training"]
    assert training["step"] == 6 and training["final"] is True
    with pytest.raises(ConfigError, match="max_minutes"):
        _config("test_simple_gan.toml", tiny_dataset, out, "train.max_minutes=-1")
    # The CLI says which it was.
    from sketch2anime.training.run import run_experiment as cli_train
    cli = tmp_path / "cli"
    cli_settings = [f"data.root={json.dumps(str(tiny_dataset))}", f"experiment.output_dir={json.dumps(str(cli))}",
                    *settings]
    capsys.readouterr()
    assert cli_train(CONFIGS / "test_simple_gan.toml", cli_settings) == 0
    assert "finished test_simple_gan" in capsys.readouterr().out  # this one runs out of steps, not time
    ticks = iter(range(0, 10**6, 60))  # every clock read a minute later: the 1.5-minute budget ends after step 2
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    assert cli_train(CONFIGS / "test_simple_gan.toml", cli_settings[:2] + ["train.steps=9", *settings[1:]],
                     resume=True) == 0
    assert "stopped test_simple_gan" in capsys.readouterr().out


def test_cli_train_end_to_end(tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = [f"data.root={json.dumps(str(tiny_dataset))}", f"experiment.output_dir={json.dumps(str(out))}",
            "train.steps=2"]
    assert run_experiment(CONFIGS / "test_simple_gan.toml", args) == 0
    assert "model" in capsys.readouterr().out
    from sketch2anime.cli import main

    assert main(["train", str(CONFIGS / "test_simple_gan.toml"), *sum((["--set", a] for a in args), [])]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", str(CONFIGS / "test_simple_gan.toml"), "--resume", *sum((["--set", a] for a in args), [])]) == 0


def test_resumed_log_keeps_counting_training_time(tmp_path: Path) -> None:
    from sketch2anime.training.logging import METRICS_FILE, RunLogger

    first = RunLogger(tmp_path, total_steps=10, progress=False, tensorboard=False)
    for step in (1, 2, 3):
        first.log(step, {"loss": 1.0})
    lines = [json.loads(x) for x in (tmp_path / METRICS_FILE).read_text().splitlines()]
    # A killed run restarted from step 2: the record of step 3 goes, the clock goes on from step 2's time.
    rewritten = [{**r, "time": 100.0 * r["step"]} for r in lines]
    (tmp_path / METRICS_FILE).write_text("\n".join(json.dumps(r) for r in rewritten) + "\n")
    resumed = RunLogger(tmp_path, total_steps=10, start_step=2, progress=False, tensorboard=False)
    resumed.log(3, {"loss": 0.5})
    records = [json.loads(x) for x in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert 200.0 <= records[-1]["time"] < 230.0


def test_ssim_weight_adds_the_ssim_loss_to_the_generator_update(tiny_dataset: Path, tmp_path: Path) -> None:
    plain, weighted = tmp_path / "plain", tmp_path / "ssim"
    train_experiment(_config("test_simple_gan.toml", tiny_dataset, plain))
    train_experiment(_config("test_simple_gan.toml", tiny_dataset, weighted, "train.ssim_weight=5.0"))
    without, with_ssim = _metrics(plain)[-1], _metrics(weighted)[-1]
    assert "ssim" not in without
    assert 0 < with_ssim["ssim"] <= 2
    # The weighted term is part of the generator's total: same seed, so the first logged steps'
    # other terms are nearly equal (they drift apart only as the weights do).
    first_plain, first_weighted = _metrics(plain)[0], _metrics(weighted)[0]
    added = first_weighted["g_loss"] - first_plain["g_loss"]
    assert added == pytest.approx(5.0 * first_weighted["ssim"], rel=0.05)


def test_a_folder_in_training_refuses_a_second_trainer(tiny_dataset: Path, tmp_path: Path) -> None:
    import os

    from sketch2anime.training.run_lock import RunLock

    out = tmp_path / "busy"
    config = _config("test_simple_gan.toml", tiny_dataset, out)
    with RunLock(out):  # a trainer still running in the folder
        with pytest.raises(ConfigError, match=f"being trained by another process \\(PID {os.getpid()}\\)"):
            train_experiment(config)
        assert not (out / "metrics.jsonl").exists() and not (out / "config.json").exists()
    train_experiment(config)  # once it has stopped, the folder is free
    assert [r["step"] for r in _metrics(out)] == [2, 4]
    RunLock(out).acquire().release()  # and the finished run released it


def test_a_killed_trainer_leaves_no_stale_lock(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from sketch2anime.training.run_lock import RunLock

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from sketch2anime.training.run_lock import RunLock; "
         f"held = RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"PID {holder.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    RunLock(tmp_path).acquire().release()  # SIGKILL released it: --resume works at once
