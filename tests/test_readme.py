"""Every fenced snippet of the README, run as pasted (issue 14).

Python snippets and the ``generate`` / ``curl`` commands really run, in a scratch folder holding
the repository's ``examples/``. Commands that need the datasets or hours of training (prepare,
train, evaluate, frames, serve...) cannot run in a test: their arguments are parsed by the real
CLI parser, and ``train`` additionally resolves its config with ``--dry-run``. Setup commands
(venv, pip, pytest, apt-get) are skipped, and scripts must exist. A command the test does not know
fails it, so a new README snippet has to be classified here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SETUP = ("python3 -m venv", ". .venv/bin/activate", "pip install", "python -m pytest", "apt-get")
RUN_FOR_REAL = {"generate"}


def snippets(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README.read_text(encoding="utf-8")) if lang == language]


def bash_commands() -> list[str]:
    commands = []
    for body in snippets("bash"):
        joined = re.sub(r"\\\n\s*", " ", body)
        for line in joined.splitlines():
            line = " ".join(shlex.split(line, comments=True))  # drops comments, keeps quoting intact enough
            for command in (part.strip() for part in re.split(r"\s&&\s", line)):
                if command:
                    commands.append(command)
    return commands


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    (folder / "examples").symlink_to(ROOT / "examples")
    return folder


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def test_python_snippets_run_as_pasted(workdir: Path) -> None:
    blocks = snippets("python")
    assert blocks, "the README has no Python snippet"
    for block in blocks:
        done = subprocess.run([sys.executable, "-c", block], cwd=workdir, env=_env(), capture_output=True,
                              text=True, timeout=240)
        assert done.returncode == 0, f"README snippet failed:\n{block}\n{done.stderr[-3000:]}"
    assert (workdir / "face_coloured.png").is_file()


def _curl(command: list[str], workdir: Path) -> None:
    """Run a ``curl -F ... URL`` line through the app with the default model (no port needed)."""
    from fastapi.testclient import TestClient

    from sketch2anime.inference import Sketch2AnimePipeline
    from sketch2anime.server.app import create_app

    files, data, url, out = {}, {}, None, None
    args = iter(command[1:])
    for arg in args:
        if arg == "-F":
            key, value = next(args).split("=", 1)
            if value.startswith("@"):
                files[key] = (Path(value[1:]).name, (workdir / value[1:]).read_bytes(), "image/png")
            else:
                data[key] = value
        elif arg == "-o":
            out = workdir / next(args)
        elif arg.startswith("http"):
            url = arg
    assert url and files, command
    path = re.sub(r"^https?://[^/]+", "", url)
    client = TestClient(create_app({"default": Sketch2AnimePipeline.from_pretrained("default")}),
                        base_url="http://127.0.0.1:7860")
    response = client.post(path, files=files, data=data)
    assert response.status_code == 200, response.text
    if out is not None:
        out.write_bytes(response.content)
        assert response.content[:8] == b"\x89PNG\r\n\x1a\n"


def _upscalers_installed() -> bool:
    from sketch2anime.upscale.fetch import UPSCALERS, upscaler_folder

    return all((upscaler_folder(name) / "config.json").is_file() for name in UPSCALERS)


def test_bash_snippets_run_or_parse(workdir: Path) -> None:
    from sketch2anime.cli import build_parser

    parser = build_parser()
    commands = bash_commands()
    ran = 0
    for command in commands:
        if command.startswith(SETUP):
            continue
        words = shlex.split(command)
        while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value prefixes
            words = words[1:]
        if words[0] in ("python", "python3") and words[1].startswith(("scripts/", "benchmarks/")) \
                or words[0].startswith("scripts/"):
            script = words[1] if words[0].startswith("python") else words[0]
            assert (ROOT / script).is_file(), f"README names a missing script: {command}"
            continue
        if words[0] == "curl":
            _curl(words, workdir)
            ran += 1
            continue
        if words[0] == "torchrun":
            words = ["sketch2anime", *words[words.index("sketch2anime.cli") + 1:]]
        assert words[0] == "sketch2anime", f"README command not classified in tests/test_readme.py: {command}"
        argv = words[1:]
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"README command does not parse: {command}")
        model = argv[argv.index("--model") + 1] if "--model" in argv else "default"
        if "--upscale" in argv and not _upscalers_installed():
            continue  # needs `sketch2anime weights upscaler` (a download), parsed above
        if argv[0] in RUN_FOR_REAL and model == "default":  # others need a model trained first
            done = subprocess.run(words, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=240)
            assert done.returncode == 0, f"README command failed: {command}\n{done.stderr[-3000:]}"
            ran += 1
        elif argv[0] == "train":
            done = subprocess.run([*words, "--dry-run"], cwd=ROOT, env=_env(), capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, f"README train command does not resolve: {command}\n{done.stderr[-3000:]}"
    assert ran >= 4  # three generate lines and the curl line really ran
    assert (workdir / "results" / "face.png").is_file() and (workdir / "results" / "sprite.png").is_file()
