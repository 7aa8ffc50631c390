"""The on-disk cache every part shares: where it is (:func:`cache_dir`) and how a file
enters it or any other folder (:func:`atomic_path`, :func:`write_atomic`: whole or not at
all, never half-written, also when processes write the same file at once)."""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator


def cache_dir() -> Path:
    """The cache: ``$SWITCHBENCH_CACHE`` (unset or empty: ``.cache`` in the working
    directory, never the working directory itself). Runs are cached under ``runs/``, the
    cognitive trial pools under ``neurogym-pools/``, pretrained networks under
    ``features/`` and ``pretrained/``."""
    return Path(os.environ.get("SWITCHBENCH_CACHE") or ".cache")


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same folder, created if missing; same file-name
    ending, so that writers that go by the suffix still do) to write a file to: when the
    block ends without an error it replaces ``path`` in one rename (``os.replace``), else it
    is removed and ``path`` is left as it was. A reader, an interrupted write or a full disk
    never leaves half a file.

    >>> import tempfile; folder = Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "sub" / "a.txt") as tmp:
    ...     _ = tmp.write_text("whole")
    >>> (folder / "sub" / "a.txt").read_text(), sorted(p.name for p in (folder / "sub").iterdir())
    ('whole', ['a.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{secrets.token_hex(4)}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)        # gone already where the rename happened


def write_atomic(path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically (:func:`atomic_path`)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return path
