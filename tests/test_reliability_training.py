"""Crash safety of training: SIGKILL at random moments, then --resume; a disk that fills up mid-write.

The kill campaign drives the real CLI (``python -m sketch2anime.cli train``) in a subprocess and
kills it with SIGKILL at seeded random moments; after every kill each checkpoint file on disk must
load and at most ``checkpoint_every`` steps may be lost. The finished run must equal an
uninterrupted one bit for bit. ``kill_resume_campaign`` and ``disk_full_fault`` live in
``sketch2anime.testing.training_faults``; ``scripts/reliability.py`` runs them for its report.
"""

from __future__ import annotations

import errno
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from sketch2anime import checkpoint
from sketch2anime.checkpoint import load_model
from sketch2anime.testing.training_faults import (CONFIG, REPO, DiskFull, _env, _snapshot, check_files,
                                                  disk_full_fault, final_tensors, kill_resume_campaign,
                                                  make_tiny_dataset, metrics_without_timing, saved_step,
                                                  settings_for, train_command)
from sketch2anime.training.autoencoder_stage import AutoencoderStage
from sketch2anime.training.config import load_experiment
from sketch2anime.training.run import train_experiment

@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def test_sigkill_at_random_moments_then_resume(dataset: Path, tmp_path: Path) -> None:
    steps, every = 40, 4
    campaign = kill_resume_campaign(dataset, tmp_path / "killed", kills=4, seed=1234, steps=steps, every=every)
    assert any(k.target_step and not k.finished for k in campaign.kills)  # at least one kill mid-training
    for kill in campaign.kills:
        assert kill.files_loaded > 0 or kill.after == 0
        assert kill.after >= kill.before, kill  # a kill never takes the saved state back
        assert kill.after % every == 0 or kill.after == steps, kill
        assert kill.lost <= every, kill  # nothing lost beyond the last interval
    assert campaign.final_rc == 0
    assert campaign.final_step == steps
    assert campaign.final_logged == list(range(1, steps + 1))  # each step logged once, none missing
    assert campaign.temporary_files == []  # whatever a kill left half-written was cleared on resume

    # The killed-and-resumed run is the uninterrupted run, bit for bit.
    reference = tmp_path / "reference"
    subprocess.run(train_command(dataset, reference, steps, every, resume=False), cwd=REPO, env=_env(),
                   check=True, capture_output=True, timeout=600)
    expected, got = final_tensors(reference), final_tensors(tmp_path / "killed")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    assert metrics_without_timing(reference) == metrics_without_timing(tmp_path / "killed")
    model = load_model(tmp_path / "killed" / "model" / "autoencoder")
    reference_model = load_model(reference / "model" / "autoencoder")
    for (name, a), (_, b) in zip(model.state_dict().items(), reference_model.state_dict().items()):
        assert torch.equal(a, b), name


class _Crash(Exception):
    pass


def test_resume_restores_the_global_random_generators(dataset: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Code that draws from Python's, numpy's or torch's global generator inside a step
    # (augmentation, dropout) must continue the same sequence after a resume. The bit-identical
    # campaign above cannot see a skipped restore: the tiny autoencoder run draws nothing from them.
    # Here every training step draws from all three.
    torch.set_num_threads(1)
    draws: dict[int, tuple] = {}
    original = AutoencoderStage.train_step

    def drawing_step(self, batch, step):
        draws[step + 1] = (random.random(), float(np.random.random()), float(torch.rand(1)))
        return original(self, batch, step)

    monkeypatch.setattr(AutoencoderStage, "train_step", drawing_step)

    def crash_after_6(step: int) -> None:
        if step == 6:
            raise _Crash

    def run(run_dir: Path, resume: bool = False, callback=None) -> dict[int, tuple]:
        draws.clear()
        try:
            train_experiment(load_experiment(CONFIG, settings_for(dataset, run_dir, steps=8, every=4)),
                             resume=resume, callback=callback)
        except _Crash:
            pass
        return dict(draws)

    full = run(tmp_path / "full")
    run(tmp_path / "killed", callback=crash_after_6)  # the state on disk is step 4's
    resumed = run(tmp_path / "killed", resume=True)
    assert sorted(resumed) == [5, 6, 7, 8]
    assert resumed == {step: full[step] for step in resumed}


def test_resume_clears_what_a_killed_writer_left(dataset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = load_experiment(CONFIG, settings_for(dataset, run_dir, steps=3, every=3))
    torch.set_num_threads(1)
    train_experiment(config)
    orphans = [run_dir / "state" / ".train.3.safetensors.k1ll3d.tmp", run_dir / "model" / "autoencoder" /
               ".model.safetensors.x7.tmp", run_dir / ".config.json.q2.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a file")
    keep = run_dir / "notes.tmp"  # not the atomic writer's naming: not ours to delete
    keep.write_text("mine")
    train_experiment(config, resume=True)
    assert not any(orphan.exists() for orphan in orphans) and keep.exists()
    assert check_files(run_dir)[1] == [] and saved_step(run_dir) == 3


@pytest.mark.parametrize("fault", ["tensors", "index"])
def test_disk_full_during_a_checkpoint_keeps_the_previous_one(dataset: Path, tmp_path: Path, fault: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    report = disk_full_fault(dataset, tmp_path, fault, monkeypatch)
    assert report["fired"] == 1 and report["errno"] == errno.ENOSPC
    assert report["state_step"] == 3  # the step-3 checkpoint is still the one that loads
    assert report["previous_files_intact"]
    # A failed tensors write leaves nothing; a failed index write leaves the complete, unreferenced
    # step-6 tensors (the next save replaces it).
    assert report["extra_files"] == ([] if fault == "tensors" else ["train.6.safetensors"])
    assert report["temporary_files"] == []
    assert report["resumed_step"] == 6 and report["resumed_equals_uninterrupted"]


@pytest.mark.parametrize("fault", ["tensors", "index"])
def test_disk_full_while_saving_a_model_keeps_a_loadable_one(tmp_path: Path, fault: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from sketch2anime.models.autoencoder import AutoencoderConfig, SketchAutoencoder

    model = SketchAutoencoder(AutoencoderConfig(image_size=64, latent_dim=16, base_channels=4, max_channels=8))
    folder = checkpoint.save_model(model, tmp_path / "model")
    before = _snapshot(folder)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    disk = DiskFull(monkeypatch, fault)
    disk.armed = True
    with pytest.raises(OSError) as raised:
        checkpoint.save_model(model, folder)
    assert raised.value.errno == errno.ENOSPC and disk.fired == 1
    after = _snapshot(folder)
    assert sorted(after) == sorted(before)  # no temporary file left behind
    if fault == "tensors":
        assert after == before  # the weights were never replaced
    else:
        assert after["config.json"] == before["config.json"]  # weights are new, their config unchanged
    load_model(folder, expected_type="sketch_autoencoder")
