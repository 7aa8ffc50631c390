"""The on-disk cache every part shares: where it is (:func:`cache_dir`) and how a file
enters it (:func:`atomic_file`: whole or not at all, never half-written, also when
processes write the same entry at once)."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def cache_dir() -> Path:
    """The cache: ``$SWITCHBENCH_CACHE`` (unset or empty: ``.cache`` in the working
    directory, never the working directory itself). Runs are cached under ``runs/``, the
    cognitive trial pools under ``neurogym-pools/``, pretrained networks under
    ``features/`` and ``pretrained/``."""
    return Path(os.environ.get("SWITCHBENCH_CACHE") or ".cache")


@contextmanager
def atomic_file(path: Path, suffix: str = ""):
    """Write ``path`` atomically: the block writes a temporary file in the same folder
    (opened for binary writing, yielded), which then replaces ``path`` in one step; if the
    block fails, the temporary file is removed and ``path`` is left as it was.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_file(folder / "sub" / "x.bin") as f:
    ...     _ = f.write(b"whole")
    >>> (folder / "sub" / "x.bin").read_bytes(), sorted(p.name for p in (folder / "sub").iterdir())
    (b'whole', ['x.bin'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
