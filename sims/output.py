"""Results a study writes are complete or absent: write to a temporary file in the target folder, then
rename it into place."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call write(tmp_path), then rename tmp_path to path (the temp file is removed on failure)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_csv(path: Path, rows: list[dict]) -> None:
    """rows (dicts with the same keys) as a CSV file with a header, complete or absent."""
    import csv

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)


def atomic_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)

    atomic_write(path, write)


def check_writable(folder: Path) -> None:
    """Create the output folder and prove a file can be written there, before any work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"cannot write to --out {folder}: {exc.strerror or exc}") from None


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def run_study(prog: str, debug: bool, work: Callable[[], Any]) -> tuple[int, Any]:
    """(0, work()), with the studies' failures as exit statuses: 130 after Ctrl-C (nothing of the
    unfinished run is written), 2 after a bad setting or a failed write, its message on stderr (with
    debug: the exception itself)."""
    try:
        return 0, work()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing written for the unfinished run", file=sys.stderr)
        return 130, None
    except (ValueError, TypeError, OSError, OverflowError) as exc:
        if debug:
            raise
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2, None


def report(rows: list, as_json: bool, quiet: bool, message: str) -> None:
    """A study's last words: its rows as JSON (for scripts), or `message` unless quiet."""
    if as_json:
        import json

        print(json.dumps(rows, indent=1))
    elif not quiet:
        print(message)


def parse_choices(text: str, known: list[str]) -> tuple[list[str], list[str]]:
    """(chosen, unknown) from a comma-separated list whose names may hold ", " themselves: pieces are
    joined back until they make a known name."""
    pieces = [p.strip() for p in text.split(",")]
    chosen, unknown, i = [], [], 0
    while i < len(pieces):
        for j in range(len(pieces), i, -1):  # the longest run of pieces that names a choice
            name = ", ".join(pieces[i:j])
            if name in known:
                chosen.append(name)
                i = j
                break
        else:
            unknown.append(pieces[i])
            i += 1
    return chosen, unknown
