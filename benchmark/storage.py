"""The run cache: one verified entry per run (one seed of one configuration).

An entry is a folder ``<cache>/runs/<paradigm>/<model>-seed<seed>-<key>`` written
atomically by :func:`save_run` and checked file by file by :func:`verify_entry` before
:func:`load_run` reads it (JSON, CSV and ``.npz``; nothing pickled). The key
(:func:`~switchbench.benchmark.config.run_key`) holds the configuration and the code, never
how many seeds ran together: a seed's result is the same alone or batched.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from switchbench.benchmark import metrics as M
from switchbench.benchmark.config import _file_hash, code_versions, run_key
from switchbench.cache import cache_dir
from switchbench.errors import SwitchbenchError


@dataclass
class RunResult:
    """Everything one run (one seed) produced; ``log`` is tidy (one row per step).

    ``learner``, ``checkpoints`` and ``hidden`` are kept in memory only, never cached: a
    result loaded from the cache has ``learner=None``, ``checkpoints=None`` and ``hidden=None``.
    """

    config: dict
    log: pd.DataFrame
    metrics: dict[str, float]
    R0: np.ndarray                     # R0[b, k]: normalised held-out loss on task k at the end of block b
    Rk: np.ndarray                     # the same after k_adapt learning steps on a copy of the model
    probes: dict[str, np.ndarray] = field(default_factory=dict)   # name -> (n_blocks, ...) at block ends
    robustness: pd.DataFrame | None = None   # the final model under perturbations (models with ``perturb``)
    cue_probes: pd.DataFrame | None = None   # the final model under composed rule cues (paradigms with cue probes)
    path: Path | None = None           # where the run is cached
    learner: Any = None                # the trained single-seed learner (a fresh run only)
    checkpoints: list | None = None    # checkpoints=True: the learner's state at each block end
    hidden: list | None = None         # record_hidden=True: hidden states on each task's held-out trials

    @property
    def switch_times(self) -> pd.DataFrame:
        c = self.config["runner"]
        return M.switch_time(self.log, c["criterion"], c["threshold"])


def cache_root() -> Path:
    """The run cache: ``$SWITCHBENCH_CACHE`` (unset or empty: ``.cache``)."""
    return cache_dir()


def slug(name: str) -> str:
    """A file-name-safe form of a name: anything but letters, digits, ``.``, ``_`` and ``-``
    becomes ``_``, and no leading dot.

    >>> slug("my_pkg.models:make"), slug("../etc/x")
    ('my_pkg.models_make', '_etc_x')
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(name)).lstrip(".") or "_"


def run_dir(config: dict, key: str | None = None) -> Path:
    """The entry folder of a run (``key``: its cache key when already computed)."""
    name = f"{slug(config['model'])}-seed{config['seed']}-{key or run_key(config)}"
    return cache_root() / "runs" / slug(config["paradigm"]) / name


def warn(message: str) -> None:
    """One warning line on stderr (beside any progress bars)."""
    tqdm.write(f"switchbench: warning: {message}", file=sys.stderr)


class CorruptEntry(SwitchbenchError):
    """A cache entry that does not verify (missing, truncated or edited files)."""


def _meta_checksum(meta: dict) -> str:
    return hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True)
                          .encode()).hexdigest()


_PLAIN = re.compile(r'[^,"\r\n]+\Z')      # a CSV field written as it is (no quoting)


def csv_text(df: pd.DataFrame) -> str | None:
    """The text of ``df.to_csv(index=False)``, built column by column (two to four times faster
    for a run's log: the time of writing a cache entry is mostly spent there), or None where a
    column is not one whose text this knows exactly: float64 (``repr``, which is numpy's
    shortest round-trip text; NaN empty, as pandas writes it), numpy integers and booleans, and
    strings that need no quoting. A None means: write with pandas.

    >>> df = pd.DataFrame({"step": [0, 1], "phase": ["train", "train"], "loss": [0.25, float("nan")],
    ...                    "switch": [False, True]})
    >>> csv_text(df) == df.to_csv(index=False)
    True
    >>> csv_text(pd.DataFrame({"a": ["x,y"], "b": [1]})) is None
    True
    """
    names = list(df.columns)
    if len(df) == 0 or len(names) < 2 or not df.columns.is_unique or \
            not all(isinstance(n, str) and _PLAIN.match(n) for n in names):
        return None
    cols = []
    for name in names:
        col = df[name]
        if col.dtype == np.float64:
            values = col.to_numpy().tolist()
            text = list(map(repr, values))
            if col.isna().any():
                text = ["" if v != v else t for v, t in zip(values, text)]
        elif isinstance(col.dtype, np.dtype) and col.dtype.kind in "iub" or col.dtype == object or \
                pd.api.types.is_string_dtype(col.dtype):
            codes, uniques = pd.factorize(col, use_na_sentinel=True)
            if (codes < 0).any():
                return None
            if col.dtype.kind in "iub":                         # digits and "-", or True and False
                words = [str(u) for u in uniques.tolist()]
            else:
                words = uniques.tolist()
                if not all(isinstance(w, str) and _PLAIN.match(w) for w in words):
                    return None
            text = np.asarray(words, dtype=object)[codes].tolist()
        else:
            return None
        cols.append(text)
    return ",".join(names) + "\n" + "\n".join(map(",".join, zip(*cols))) + "\n"


def _write_log(log: pd.DataFrame, path: Path) -> None:
    """``log`` as gzip-compressed CSV (level 1: several times faster to write than the
    default 9, files a little larger), the text of :func:`csv_text` where it has one."""
    text = csv_text(log)
    if text is None:
        log.to_csv(path, index=False, compression={"method": "gzip", "compresslevel": 1})
        return
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(text.encode())


def save_run(result: RunResult, path: Path, overwrite: bool = False, key: str | None = None) -> Path:
    """Write a run atomically: into a temporary folder beside ``path``, then one rename.

    ``config.json`` holds the configuration, the cache key, :func:`code_versions`, a
    SHA-256 of every other file and a checksum of itself, all verified by :func:`load_run`.
    An existing entry is kept (another process finished the same run first) unless
    ``overwrite``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".tmp-"))
    try:
        _write_log(result.log, tmp / "log.csv.gz")
        arrays = {"R0": result.R0, "Rk": result.Rk, **{f"probe.{k}": v for k, v in result.probes.items()}}
        np.savez_compressed(tmp / "arrays.npz", **arrays)
        if result.robustness is not None:
            result.robustness.to_csv(tmp / "robustness.csv", index=False)
        if result.cue_probes is not None:
            result.cue_probes.to_csv(tmp / "cue_probes.csv", index=False)
        (tmp / "metrics.json").write_text(json.dumps(result.metrics, indent=1, sort_keys=True))
        meta = {"config": result.config, "key": key or run_key(result.config),
                "code": code_versions(result.config["model"]),
                "files": {f.name: _file_hash(f) for f in sorted(tmp.iterdir())}}
        meta["checksum"] = _meta_checksum(meta)
        (tmp / "config.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        old = None
        if overwrite and path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=".old-"))
            try:
                os.replace(path, old / "entry")
            except OSError:
                pass
        try:
            os.replace(tmp, path)
        except OSError as e:   # another process finished the same run first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
            if not path.is_dir():    # else something that no run can replace: say so
                warn(f"run not cached: cannot write its entry {path} ({e.strerror or type(e).__name__})")
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def verify_entry(path: Path, config: dict | None = None, key: str | None = None) -> dict:
    """The metadata of a cache entry after checking it: ``config.json`` reads and matches its
    own checksum, every file listed is there with its SHA-256, and (given ``config``) the
    entry is of that configuration and of the code now installed (its key). Raises
    :class:`CorruptEntry` with the reason."""
    path = Path(path)
    try:
        meta = json.loads((path / "config.json").read_text())
    except (OSError, ValueError, RecursionError) as e:   # RecursionError: brackets nested thousands deep
        raise CorruptEntry(f"config.json unreadable ({type(e).__name__})") from None
    if not isinstance(meta, dict) or not {"config", "key", "files", "checksum"} <= set(meta):
        raise CorruptEntry("config.json lacks its configuration, key or checksums")
    if meta["checksum"] != _meta_checksum(meta):
        raise CorruptEntry("config.json does not match its checksum")
    if not {"metrics.json", "arrays.npz", "log.csv.gz"} <= set(meta["files"]):
        raise CorruptEntry("the entry lists no metrics, arrays or log")
    for name, digest in meta["files"].items():
        f = path / name
        if name != Path(name).name or not f.is_file():
            raise CorruptEntry(f"{name} is missing")
        if _file_hash(f) != digest:
            raise CorruptEntry(f"{name} does not match its checksum")
    if config is not None and (json.dumps(meta["config"], sort_keys=True) != json.dumps(config, sort_keys=True)
                               or meta["key"] != (key or run_key(config))):
        raise CorruptEntry("it holds another configuration")
    return meta


def load_run(path: Path, config: dict | None = None, key: str | None = None) -> RunResult:
    """Load a cached run after :func:`verify_entry` (JSON, CSV and ``.npz`` read without pickle)."""
    path = Path(path)
    meta = verify_entry(path, config, key)
    try:
        with np.load(path / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        probes = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("probe.")}
        log = pd.read_csv(path / "log.csv.gz")
        robust = pd.read_csv(path / "robustness.csv") if "robustness.csv" in meta["files"] else None
        cue = pd.read_csv(path / "cue_probes.csv") if "cue_probes.csv" in meta["files"] else None
        metrics = json.loads((path / "metrics.json").read_text())
        return RunResult(config=meta["config"], log=log, metrics=metrics, R0=arrays["R0"], Rk=arrays["Rk"],
                         probes=probes, robustness=robust, path=path, cue_probes=cue)
    except CorruptEntry:
        raise
    except Exception as e:  # noqa: BLE001 - verified files that still do not parse
        raise CorruptEntry(f"unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def load_cached(config: dict, key: str | None = None) -> RunResult | None:
    """The cached run of ``config`` if its entry verifies; a corrupt entry is reported (one
    warning line naming its path) and removed, so that the run is recomputed (None)."""
    path = run_dir(config, key)
    if not path.exists():
        if path.is_symlink():       # dangling or looping: no run could ever be cached there
            warn(f"cache entry {path} is a broken symbolic link; removing it and recomputing the run")
            try:
                path.unlink()
            except OSError:
                pass                # another process removed it first
        return None
    try:
        return load_run(path, config, key)
    except CorruptEntry as e:
        warn(f"cache entry {path} is corrupt ({e}); recomputing it")
        trash = Path(tempfile.mkdtemp(dir=path.parent, prefix=".corrupt-"))
        try:
            os.replace(path, trash / "entry")
        except OSError:
            pass    # another process moved it first
        shutil.rmtree(trash, ignore_errors=True)
        return None
