"""Markdown tables and the sections of docs/benchmarks.md.

Each script owns one section, delimited by HTML comments, and rewrites only that one, so running
one benchmark never erases another's numbers::

    <!-- benchmark:projection:begin -->
    ...
    <!-- benchmark:projection:end -->
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Sequence

from .hardware import Hardware

DOC_HEADER = """# Benchmarks

Measured by the scripts in `benchmarks/` (how to run them: `benchmarks/README.md`). Each section
below is rewritten by its own script and records when, on what, and with which command it was
measured; re-running one script leaves the other sections as they are.
"""

# Sections appear in this order when the doc is first assembled; unknown ones go last.
SECTION_ORDER = ("inference_latency", "panel_latency", "projection", "training_throughput")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; ``|`` inside cells is escaped."""
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, the table {len(headers)} columns: {row!r}")
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that ran this script, written as someone would type it from the repo root."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0])
    try:
        shown = script.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        shown = script.as_posix()
    return "python " + shlex.join([shown, *argv[1:]])


def section_text(name: str, title: str, hardware: Hardware, command: str, body: str,
                 notes: Sequence[str] = (), when: _dt.datetime | None = None) -> str:
    """One complete section: heading, date, hardware, command, notes, then ``body`` (tables)."""
    when = when or _dt.datetime.now().astimezone()
    parts = [
        f"<!-- benchmark:{name}:begin -->",
        f"## {title}",
        "",
        f"Measured {when.strftime('%Y-%m-%d %H:%M %Z').strip()} with:",
        "",
        "```",
        command,
        "```",
        "",
        hardware.markdown(),
        _end_state(),
        "",
    ]
    if notes:
        parts += [f"- {note}" for note in notes] + [""]
    parts += [body.rstrip(), "", f"<!-- benchmark:{name}:end -->"]
    return "\n".join(parts) + "\n"


def _end_state() -> str:
    """Load and this process's scheduling priority when the section is written: a benchmark run at a
    lowered priority (nice > 0) next to other work measures what it got, not what the code costs."""
    parts = []
    try:
        load = os.getloadavg()
        parts.append(f"load average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    except (AttributeError, OSError):
        pass
    try:
        parts.append(f"niceness of the benchmark process at the end: {os.getpriority(os.PRIO_PROCESS, 0)}")
    except (AttributeError, OSError):
        pass
    return f"- {'; '.join(parts)}" if parts else ""


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"<!-- benchmark:{re.escape(name)}:begin -->.*?<!-- benchmark:{re.escape(name)}:end -->\n?",
                      re.DOTALL)


def merge_section(document: str, name: str, section: str) -> str:
    """``document`` with section ``name`` replaced by ``section`` (or inserted in SECTION_ORDER)."""
    if not document.strip():
        document = DOC_HEADER
    pattern = _pattern(name)
    if pattern.search(document):
        return pattern.sub(lambda _: section, document, count=1)
    # Insert before the first existing section that should come after this one.
    rank = SECTION_ORDER.index(name) if name in SECTION_ORDER else len(SECTION_ORDER)
    for later in SECTION_ORDER[rank + 1:]:
        match = _pattern(later).search(document)
        if match:
            return document[:match.start()] + section + "\n" + document[match.start():]
    return document.rstrip("\n") + "\n\n" + section


def write_section(path: Path, name: str, section: str) -> Path:
    """Update ``path`` in place (created with a header when missing)."""
    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(merge_section(old, name, section), encoding="utf-8")
    return path
