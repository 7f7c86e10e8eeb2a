"""Experiment configs: loading, overrides, strict keys, dry run, the shipped configs/*.toml."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sketch2anime.cli import main
from sketch2anime.config import ConfigError
from sketch2anime.training.config import experiment_from_dict, experiment_to_dict, load_experiment, to_toml
from sketch2anime.training.run import STAGES, run_experiment

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def test_dry_run_prints_resolved_config_with_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(CONFIGS / "test_autoencoder.toml"), "--dry-run",
                 "--set", "train.steps=77", "--set", "data.root=/somewhere/else", "--set", "train.betas=[0.1, 0.2]",
                 "--set", "data.rough.jitter_grid=9"])
    assert code == 0
    printed = tomllib.loads(capsys.readouterr().out)
    assert printed["train"]["steps"] == 77
    assert printed["train"]["betas"] == [0.1, 0.2]
    assert printed["data"]["root"] == "/somewhere/else"
    assert printed["data"]["rough"]["jitter_grid"] == 9
    assert printed["experiment"]["stage"] == "autoencoder"
    # image_size from [experiment] reaches the model section.
    assert printed["autoencoder"]["image_size"] == 64
    # Defaults that the file does not set are resolved too.
    assert printed["train"]["adversarial"] == "hinge"


def test_dry_run_output_round_trips() -> None:
    config = load_experiment(CONFIGS / "test_generator.toml", ["train.ema_decay=0.99"])
    again = experiment_from_dict(tomllib.loads(to_toml(experiment_to_dict(config))))
    assert again == config
    assert again.train.ema_decay == 0.99


@pytest.mark.parametrize("override, key", [
    ("train.stepz=3", "stepz"),
    ("data.colour=1", "colour"),
    ("generator.widthh=3", "widthh"),
    ("nonsense.key=1", "nonsense"),
])
def test_unknown_key_is_an_error_naming_it(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_experiment(CONFIGS / "test_generator.toml", [override])


@pytest.mark.parametrize("override, key", [
    ("train.steps=-1", "train.steps"),
    ("train.steps=abc", "train.steps"),
    ("train.adversarial=wasserstein", "train.adversarial"),
    ("train.device=tpu", "train.device"),
    ("train.latent_mix=[0, 0, 0]", "train.latent_mix"),
    ("train.projection_strength=[0.9, 0.1]", "train.projection_strength"),
    ("data.batch_size=0", "data.batch_size"),
    ("data.rough_probability=2", "rough_probability"),
    ("generator.hint_downscale=3", "hint_downscale"),
])
def test_bad_value_is_an_error_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_experiment(CONFIGS / "test_generator.toml", [override])


def test_cli_reports_config_errors_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(CONFIGS / "test_autoencoder.toml"), "--dry-run", "--set", "train.lrr=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "train.lrr" in err and "Traceback" not in err


def test_unknown_stage_and_missing_sections(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="experiment.stage"):
        run_experiment(CONFIGS / "test_autoencoder.toml", ["experiment.stage=diffusion"], dry_run=True)
    # A pipeline type typed as the stage: the error names the stage that exports it.
    with pytest.raises(ConfigError, match="pipeline_type that stage 'generator' exports; write stage = 'generator'"):
        run_experiment(CONFIGS / "test_autoencoder.toml", ["experiment.stage=sketch2anime"], dry_run=True)
    bad = tmp_path / "bad.toml"
    bad.write_text('[experiment]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"\[data\]"):
        load_experiment(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("[experiment\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_experiment(broken)
    with pytest.raises(ConfigError, match="not found"):
        load_experiment(tmp_path / "missing.toml")


def test_stage_registry_is_a_plain_dict() -> None:
    assert {"autoencoder", "generator", "simple_gan"} <= set(STAGES)
    assert all(callable(build) for build in STAGES.values())


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_every_shipped_config_validates(name: str) -> None:
    config = load_experiment(CONFIGS / name)
    assert config.experiment.stage in STAGES
    if config.experiment.stage == "generator":
        assert config.experiment.autoencoder_dir
        assert config.generator is not None and config.generator.conditioning == "latent"
    if config.experiment.stage == "simple_gan":
        assert config.generator is not None and config.generator.conditioning == "sketch"


def test_real_configs_read_the_documented_dataset() -> None:
    for name in ("ae64.toml", "s2a64.toml", "simple_gan64.toml"):
        config = load_experiment(CONFIGS / name)
        assert config.data.root == "datasets/faces64"
        assert config.experiment.image_size == 64
    assert load_experiment(CONFIGS / "s2a64.toml").experiment.autoencoder_dir == "runs/ae64"


def test_python_dash_m_cli_works() -> None:
    result = subprocess.run([sys.executable, "-m", "sketch2anime.cli", "train", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "--resume" in result.stdout and "--dry-run" in result.stdout
