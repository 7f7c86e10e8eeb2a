"""Make ``import benchmarks.x`` work when a script is run as ``python benchmarks/x.py``.

Python then puts ``benchmarks/`` itself on ``sys.path``, not the repository root; the scripts call
:func:`add_repo_root` before importing their siblings so both ways of running them behave the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def add_repo_root() -> Path:
    # benchmarks/ itself must not stay on the path: its generic file names (timing, report, ...)
    # would shadow any installed module of the same name.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve().as_posix() != Path(here).as_posix()]
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    return REPO_ROOT
