"""Writing files so that a crash or a full disk never leaves one half-written.

Every file classhub generates (secrets, credentials, the rendered hub file, `.env`) goes through
`write_atomic`: a temporary file in the same folder, flushed to disk, given its
mode, then renamed over the target. Readers see the old content or the new, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import ConfigError, Problem


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text` in one step, the new file having `mode`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def ensure_private_dir(path: Path) -> None:
    """Create `path` as 0700 (or tighten it to 0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def read_text(path: Path, shown: str, fix_missing: str) -> str:
    """Read a file a person edits; every way it can fail is a `ConfigError` naming the file.

    A byte-order mark (Windows editors add one) is dropped; line endings are left to the parsers.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        problem = Problem(shown, "the file does not exist", fix_missing)
    except IsADirectoryError:
        problem = Problem(shown, "is a folder, not a file", f"remove it; then {fix_missing}")
    except PermissionError:
        problem = Problem(
            shown,
            "cannot be read (permission denied)",
            f"run classhub as the file's owner or make it readable (chmod u+r {shown})",
        )
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        problem = Problem(
            f"{shown}:{line}",
            f"is not UTF-8 text (byte {exc.object[exc.start]:#04x} on this line cannot be decoded)",
            "save the file as UTF-8 plain text (in most editors: Save As, encoding UTF-8)",
        )
    raise ConfigError([problem])
