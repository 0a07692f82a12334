"""The command line's output directories and files: a path that cannot be written is a one-line error
naming it, not a traceback."""

from __future__ import annotations

from pathlib import Path

from streams.exceptions import ConvowatchError


def make_output_directory(path: Path) -> Path:
    """Create ``path`` and its parents unless they exist; return it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConvowatchError(f"cannot write into {path}: it is a file, not a directory") from None
    except OSError as exc:
        raise ConvowatchError(f"cannot create directory {path}: {exc.strerror or exc}") from None
    return path


def write_output(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise cannot_write(path, exc) from None


def cannot_write(path: Path, exc: OSError) -> ConvowatchError:
    return ConvowatchError(f"cannot write {path}: {exc.strerror or exc}")
