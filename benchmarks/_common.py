"""What the timing scripts share: the machine's name and a scratch cache."""
from __future__ import annotations

import contextlib
import os
import platform
import shutil
import tempfile
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@contextlib.contextmanager
def scratch_cache(prefix: str):
    """A temporary ``$SWITCHBENCH_CACHE`` for timing from cold caches; removed (and the old value back) after."""
    scratch = tempfile.mkdtemp(prefix=prefix)
    before = os.environ.get("SWITCHBENCH_CACHE")
    os.environ["SWITCHBENCH_CACHE"] = scratch
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if before is None:
            os.environ.pop("SWITCHBENCH_CACHE", None)
        else:
            os.environ["SWITCHBENCH_CACHE"] = before
