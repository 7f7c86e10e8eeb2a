"""Model and state files cannot run code, and a wrong or damaged one gives an error naming the problem.

Only safetensors + JSON are ever read. A pickle dressed up as ``model.safetensors`` must be refused
without being unpickled (its payload would create a marker file), and the source tree must contain
no call that unpickles (checked on the AST, with a self-test showing the check can fail).
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from test_server_api import build_tiny_pipeline
from sketch2anime.checkpoint import (CONFIG_FILE, MODEL_FILE, CheckpointError, load_model, load_training_state,
                                     remove_stale_temporaries, save_model, save_training_state)
from sketch2anime.inference import PIPELINE_FILE, Sketch2AnimePipeline
from sketch2anime.models.autoencoder import AutoencoderConfig, SketchAutoencoder
from sketch2anime.models.cyclegan import ResnetGeneratorConfig
from sketch2anime.models.guided_unet import GuidedUNetConfig
from sketch2anime.models.projection import LatentBank

SRC = Path(__file__).resolve().parents[1] / "src" / "sketch2anime"


class _Payload:
    """Unpickling this calls ``os.mkdir(marker)``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = SketchAutoencoder(AutoencoderConfig(image_size=64, latent_dim=16, base_channels=4, max_channels=8))
    return save_model(model, tmp_path / "ae")


def _edit_config(folder: Path, **changes) -> None:
    description = json.loads((folder / CONFIG_FILE).read_text())
    for key, value in changes.items():
        if key.startswith("config."):
            description["config"][key.split(".", 1)[1]] = value
        else:
            description[key] = value
    (folder / CONFIG_FILE).write_text(json.dumps(description))


def test_a_saved_model_loads(saved: Path) -> None:
    assert isinstance(load_model(saved, expected_type="sketch_autoencoder"), SketchAutoencoder)


def test_pickle_renamed_to_safetensors_is_refused_without_running(saved: Path, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    (saved / MODEL_FILE).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(saved)
    assert not marker.exists()
    # torch's own zip-pickle format is refused the same way.
    torch.save({"weight": torch.zeros(2)}, saved / MODEL_FILE)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(saved)


@pytest.mark.parametrize("damage", ["half", "minus_one_byte", "header_only", "huge_header_length", "empty"])
def test_damaged_safetensors_names_the_file(saved: Path, damage: str) -> None:
    path = saved / MODEL_FILE
    data = path.read_bytes()
    header = struct.unpack("<Q", data[:8])[0]
    damaged = {
        "half": data[: len(data) // 2],
        "minus_one_byte": data[:-1],
        "header_only": data[: 8 + header],
        "huge_header_length": struct.pack("<Q", 2**60) + data[8:],
        "empty": b"",
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(CheckpointError, match=f"{MODEL_FILE} is not a readable safetensors file"):
        load_model(saved)


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_wrong_format_version(saved: Path, version) -> None:
    _edit_config(saved, format_version=version)
    with pytest.raises(CheckpointError, match=f"format_version {version!r}"):
        load_model(saved)


def test_config_problems_are_named(saved: Path) -> None:
    (saved / CONFIG_FILE).write_text('{"format_version": 1, "model_type": ')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(saved)
    (saved / CONFIG_FILE).write_text(json.dumps({"format_version": 1, "model_type": "teapot", "config": {}}))
    with pytest.raises(CheckpointError, match="unknown model_type 'teapot'"):
        load_model(saved)
    (saved / CONFIG_FILE).write_text(json.dumps({"format_version": 1, "model_type": "sketch_autoencoder",
                                                 "config": {"colour": "blue"}}))
    with pytest.raises(CheckpointError, match="colour"):
        load_model(saved)
    (saved / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match=f"missing file .*{CONFIG_FILE}"):
        load_model(saved)


def test_config_and_weights_shape_mismatch(saved: Path) -> None:
    _edit_config(saved, **{"config.latent_dim": 32})
    with pytest.raises(CheckpointError, match=r"weight \S+ has shape .* the config needs"):
        load_model(saved)


def test_weights_of_another_model(saved: Path, tmp_path: Path) -> None:
    other = build_tiny_pipeline(tmp_path / "p", kind="simple_gan") / "generator"
    (saved / MODEL_FILE).write_bytes((other / MODEL_FILE).read_bytes())
    with pytest.raises(CheckpointError, match="weights do not match the sketch_autoencoder config.*missing"):
        load_model(saved)
    with pytest.raises(CheckpointError, match="holds a 'hint_generator' model, expected 'sketch_autoencoder'"):
        load_model(other, expected_type="sketch_autoencoder")


def test_pipeline_folder_problems_are_named(tmp_path: Path) -> None:
    folder = build_tiny_pipeline(tmp_path / "p")
    description = json.loads((folder / PIPELINE_FILE).read_text())
    (folder / PIPELINE_FILE).write_text(json.dumps({**description, "format_version": 9}))
    with pytest.raises(CheckpointError, match="pipeline format_version 9"):
        Sketch2AnimePipeline.from_pretrained(folder, device="cpu")
    (folder / PIPELINE_FILE).write_text(json.dumps({**description, "image_size": 128}))
    with pytest.raises(CheckpointError, match="generator is for 64px, pipeline.json says 128px"):
        Sketch2AnimePipeline.from_pretrained(folder, device="cpu")
    (folder / PIPELINE_FILE).write_text(json.dumps(description))
    (folder / "latent_bank.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="latent_bank.safetensors is not a readable safetensors file"):
        Sketch2AnimePipeline.from_pretrained(folder, device="cpu")


def test_oversized_config_is_refused_before_building_the_model(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A config.json claiming far wider layers than the tensors file holds (the campaign's
    # base_channels=4096 allocated 22 GB before failing) is checked against the file on the meta
    # device: no real module is built. Widths here are small enough for the old code to survive.
    _edit_config(saved, **{"config.base_channels": 128, "config.max_channels": 512})
    built_on = []
    original = SketchAutoencoder.__init__

    def spy(self, config):
        built_on.append(torch.empty(0).device.type)
        original(self, config)

    monkeypatch.setattr(SketchAutoencoder, "__init__", spy)
    with pytest.raises(CheckpointError, match=r"weight \S+ has shape .* the config needs"):
        load_model(saved)
    assert built_on and "cpu" not in built_on, built_on


def test_absurd_structure_counts_are_refused() -> None:
    # Meta-device modules cost no memory, but a million blocks would still take minutes to build.
    with pytest.raises(ValueError, match="res_blocks must be between 0 and 64"):
        GuidedUNetConfig(res_blocks=10**6)
    with pytest.raises(ValueError, match="n_blocks must be between 0 and 64"):
        ResnetGeneratorConfig(n_blocks=10**6)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(saved: Path, value: float) -> None:
    tensors = load_file(saved / MODEL_FILE)
    key = sorted(tensors)[0]
    tensors[key][...] = value
    save_file(tensors, saved / MODEL_FILE)
    with pytest.raises(CheckpointError, match=f"{MODEL_FILE}: weight {re.escape(key)} contains NaN or infinite"):
        load_model(saved)


def _edit_pipeline(folder: Path, change) -> None:
    description = json.loads((folder / PIPELINE_FILE).read_text())
    change(description)
    (folder / PIPELINE_FILE).write_text(json.dumps(description))


TAMPERED_FOLDERS = {
    # what is changed -> what the error must say (every message also names the folder or file)
    "projection_list": (lambda d: d.update(projection=[1, 2]), "projection must be an object"),
    "k_text": (lambda d: d["projection"].update(k="ten"), "projection_k must be a positive integer, got 'ten'"),
    "k_zero": (lambda d: d["projection"].update(k=0), "projection_k must be a positive integer, got 0"),
    "reg_nan": (lambda d: d["projection"].update(reg=float("nan")), "projection_reg must be a finite number"),
    "hint_downscale_1000": (lambda d: d.update(hint_downscale=1000), "hint_downscale must divide image_size"),
    "hint_downscale_3": (lambda d: d.update(hint_downscale=3), "hint_downscale must divide image_size"),
    "hint_downscale_2": (lambda d: d.update(hint_downscale=2),
                         "generator/config.json has hint_downscale 4, pipeline.json says 2"),
    "latent_dim": (lambda d: d.update(latent_dim=7), "pipeline.json has latent_dim 7, autoencoder/config.json says 16"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED_FOLDERS))
def test_tampered_pipeline_folders_are_refused_at_load(tmp_path: Path, case: str) -> None:
    # Before: hint_downscale=1000 or 2 and latent_dim=7 loaded, then every sketch failed or was skipped.
    folder = build_tiny_pipeline(tmp_path / "p")
    change, message = TAMPERED_FOLDERS[case]
    _edit_pipeline(folder, change)
    with pytest.raises(CheckpointError, match=re.escape(message)) as error:
        Sketch2AnimePipeline.from_pretrained(folder, device="cpu")
    assert str(folder) in str(error.value)


def test_latent_bank_of_another_size_is_refused_at_load(tmp_path: Path) -> None:
    folder = build_tiny_pipeline(tmp_path / "p")
    LatentBank(torch.randn(24, 8), [f"img{i}/detail" for i in range(24)]).save(folder / "latent_bank")
    with pytest.raises(CheckpointError, match="latent bank holds 8-dim latents, autoencoder/config.json says 16"):
        Sketch2AnimePipeline.from_pretrained(folder, device="cpu")


def test_model_config_that_is_not_an_object_is_named(saved: Path) -> None:
    _edit_config(saved, config=[1])
    with pytest.raises(CheckpointError, match=f"{CONFIG_FILE}: config must be an object of settings, got list"):
        load_model(saved)


def test_training_state_problems_are_named(tmp_path: Path) -> None:
    stem = tmp_path / "state" / "train"
    save_training_state(stem, {"step": 3, "weights": {"w": torch.ones(2)}, "note": "x"})
    assert load_training_state(stem)["step"] == 3
    index_path = stem.with_name("train.json")
    index = json.loads(index_path.read_text())
    marker = tmp_path / "code-ran"
    cases = [
        ({**index, "format_version": 7}, "not a version-1 training state"),
        ({k: v for k, v in index.items() if k != "tensors_file"}, "does not name its tensors file"),
        ({**index, "tensors_file": "../../elsewhere.safetensors"}, "does not name its tensors file"),
        ({**index, "tree": {"__tensor__": "t99:nowhere"}}, "does not match"),
        ([1, 2, 3], "not a version-1 training state"),
    ]
    for content, message in cases:
        index_path.write_text(json.dumps(content))
        with pytest.raises(CheckpointError, match=message):
            load_training_state(stem)
    index_path.write_text(json.dumps(index))
    (stem.parent / index["tensors_file"]).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_training_state(stem)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# a writer killed in the middle of a file leaves the previous version loadable

# Writes version 1, then version 2 of ``WHAT`` under a file-size limit smaller than the file being
# written: the kernel kills the process (SIGXFSZ) in the middle of that write, the worst moment a
# SIGKILL or a power cut can hit. Deterministic where a timed kill is a lottery.
_KILLED_WRITER = """
import resource, signal, sys
from pathlib import Path
import torch
from sketch2anime.checkpoint import save_model, save_training_state
from sketch2anime.models.autoencoder import AutoencoderConfig, SketchAutoencoder

what, folder, limit = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])

def write(version):
    torch.manual_seed(version)
    if what == "model_weights":  # ~650 KB of weights
        model = SketchAutoencoder(AutoencoderConfig(image_size=64, latent_dim=32, base_channels=8, max_channels=32))
        save_model(model, folder / "ae", meta={"version": version})
    elif what == "model_config":  # small weights, a config.json of ~300 KB
        model = SketchAutoencoder(AutoencoderConfig(image_size=64, latent_dim=1, base_channels=1, max_channels=1))
        save_model(model, folder / "ae", meta={"version": version, "notes": [version] * 100000})
    elif what == "state_tensors":
        save_training_state(folder / "train", {"step": version, "w": torch.full((200000,), float(version))})
    else:  # state_index: tiny tensors, a JSON index of ~300 KB
        save_training_state(folder / "train", {"step": version, "w": torch.full((1,), float(version)), "log": [version] * 100000})

write(1)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it (a write would fail); the default kills
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
write(2)
"""


def _version_on_disk(what: str, folder: Path) -> int:
    if what.startswith("model"):
        load_model(folder / "ae")  # loads: config and weights are whole and match
        return json.loads((folder / "ae" / CONFIG_FILE).read_text())["meta"]["version"]
    state = load_training_state(folder / "train")
    assert state is not None and float(state["w"][0]) == state["step"]  # tensors and index of one version
    return state["step"]


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE (POSIX)")
@pytest.mark.parametrize("what", ["model_weights", "model_config", "state_tensors", "state_index"])
def test_writer_killed_mid_file_keeps_the_previous_version(what: str, tmp_path: Path) -> None:
    limit = 64 * 1024  # each file written in step 2 is larger (the others smaller)
    result = subprocess.run([sys.executable, "-c", _KILLED_WRITER, what, str(tmp_path), str(limit)],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == -signal.SIGXFSZ, result.stderr[-2000:]  # killed in the middle of a write
    # A file written in place (open + write) would now be cut short; a temporary file renamed into
    # place leaves version 1 whole.
    assert _version_on_disk(what, tmp_path) == 1
    remove_stale_temporaries(tmp_path)  # what a resumed run does first
    assert not list(tmp_path.rglob("*.tmp"))


# ---------------------------------------------------------------------------------------------
# no unpickling anywhere in the package

_PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle", "marshal", "shelve"}


def unpickling_calls(source: str, filename: str = "<source>") -> list[str]:
    """Calls that can execute code from a file: pickle-family loads, torch.load without
    ``weights_only=True``, numpy loads with ``allow_pickle=True``, torch.jit.load, Unpickler."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        keywords = {k.arg: k.value for k in node.keywords}
        root, _, attribute = name.rpartition(".")
        where = f"{filename}:{node.lineno}: {name}"
        if root in _PICKLE_MODULES and attribute in {"load", "loads", "Unpickler", "open"}:
            found.append(where)
        elif attribute == "Unpickler" or name in {"Unpickler", "torch.jit.load", "jit.load"}:
            found.append(where)
        elif name == "torch.load":
            safe = keywords.get("weights_only")
            if not (isinstance(safe, ast.Constant) and safe.value is True):
                found.append(where + " without weights_only=True")
        elif name in {"np.load", "numpy.load"}:
            allow = keywords.get("allow_pickle")
            if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                found.append(where + " with allow_pickle")
    return found


def test_the_checker_finds_unpickling() -> None:
    planted = ("import pickle, torch, numpy as np\n"
               "a = pickle.load(open('m', 'rb'))\nb = torch.load('m')\nc = torch.load('m', weights_only=False)\n"
               "d = np.load('m', allow_pickle=True)\ne = pickle.Unpickler(f)\nf = torch.jit.load('m')\n"
               "ok1 = torch.load('m', weights_only=True)\nok2 = np.load('m')\nok3 = pickle.dumps(x)\n")
    assert [line.split(":")[1] for line in unpickling_calls(planted)] == ["2", "3", "4", "5", "6", "7"]


def test_no_unpickling_in_the_package() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 30  # the scan really covers the package
    found = [hit for path in files for hit in unpickling_calls(path.read_text(encoding="utf-8"), str(path))]
    assert found == []
