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


def test_base_config_is_merged_under_the_changes(tmp_path: Path) -> None:
    (tmp_path / "parent.toml").write_text((CONFIGS / "test_autoencoder.toml").read_text())
    parent = load_experiment(tmp_path / "parent.toml")
    (tmp_path / "child.toml").write_text('base = "parent.toml"\n[experiment]\nname = "child"\n[train]\nlr = 0.123\n')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "grandchild.toml").write_text('base = "../child.toml"\n[train]\nsteps = 7\n')
    child = load_experiment(tmp_path / "sub" / "grandchild.toml", ["train.log_every=3"])
    # the changes win, table by table; everything else is the parent's
    assert (child.experiment.name, child.train.lr, child.train.steps, child.train.log_every) == ("child", 0.123, 7, 3)
    assert parent.train.lr != 0.123 and parent.train.steps != 7
    assert child.data == parent.data and child.autoencoder == parent.autoencoder
    assert child.experiment.stage == parent.experiment.stage and child.train.betas == parent.train.betas
    # the dry run prints the resolved settings, without the base key
    printed = subprocess.run([sys.executable, "-m", "sketch2anime.cli", "train", str(tmp_path / "sub" / "grandchild.toml"),
                              "--dry-run"], capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    resolved = tomllib.loads(printed.stdout)
    assert "base" not in resolved and resolved["train"]["steps"] == 7 and resolved["data"]["root"]


def test_bad_base_configs_are_refused(tmp_path: Path) -> None:
    (tmp_path / "loop_a.toml").write_text('base = "loop_b.toml"\n')
    (tmp_path / "loop_b.toml").write_text('base = "loop_a.toml"\n')
    with pytest.raises(ConfigError, match="circle"):
        load_experiment(tmp_path / "loop_a.toml")
    (tmp_path / "self.toml").write_text('base = "self.toml"\n')
    with pytest.raises(ConfigError, match="circle"):
        load_experiment(tmp_path / "self.toml")
    (tmp_path / "orphan.toml").write_text('base = "nowhere.toml"\n')
    with pytest.raises(ConfigError, match="nowhere.toml.*not found"):
        load_experiment(tmp_path / "orphan.toml")
    (tmp_path / "number.toml").write_text("base = 3\n")
    with pytest.raises(ConfigError, match="path of the config"):
        load_experiment(tmp_path / "number.toml")
    with pytest.raises(ConfigError, match="unknown setting base"):
        load_experiment(CONFIGS / "test_autoencoder.toml", ["base=x.toml"])


def test_fine_tune_configs_name_their_parent_run() -> None:
    # each fine-tune is written as the settings it changes over the run it continues
    texture = tomllib.loads((CONFIGS / "guided128_texture.toml").read_text())
    assert texture["base"] == "guided128_figure.toml" and "data" not in texture
    figure = load_experiment(CONFIGS / "guided128_figure.toml")
    resolved = load_experiment(CONFIGS / "guided128_texture.toml")
    assert resolved.data == figure.data and resolved.guided_unet == figure.guided_unet
    assert (resolved.train.l1_weight, figure.train.l1_weight) == (25.0, 45.0)
