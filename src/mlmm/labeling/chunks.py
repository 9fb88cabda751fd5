"""One labeling chunk = one Snakemake job (one SLURM job): a slice of a frames file.

:func:`label_chunk` reads the Frames, labels its slice and writes the chunk's label DB and
JSON report atomically. An empty slice (a chunk past the end of the frames; the number of
chunks is fixed in advance from an upper bound) writes a valid empty DB and report.

Resuming: while a chunk runs, every successfully labelled frame is committed at once to a
checkpoint DB next to the output, ``<db_out stem>.partial.db`` (one SQLite transaction per
frame, so a killed job leaves only whole rows). A rerun of the same chunk reuses the
checkpoint's rows whose ``frame_id`` belongs to the chunk and labels only the missing frames;
a checkpoint written with different level-of-theory settings, or one that cannot be read, is
discarded. Failed frames are not checkpointed, so a rerun tries them again. The checkpoint is
removed once the DB and the report are written.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from mlmm.engines.pyscf_qmmm import PYSCF_VERSION
from mlmm.frames import read_frames
from mlmm.labeling.db import (
    append_label_rows,
    create_label_db,
    db_level,
    frame_id,
    iter_label_rows,
    write_label_db,
)
from mlmm.labeling.ground_state import Labelled, label_frames
from mlmm.labeling.reports import ChunkReport
from mlmm.logutil import FORMAT
from mlmm.settings import LevelSettings

_LOG = logging.getLogger(__name__)


def chunk_slice(n_frames: int, chunk_size: int, chunk_index: int) -> slice:
    """Frames ``[chunk_index*chunk_size, (chunk_index+1)*chunk_size)`` clipped to ``n_frames``."""
    if chunk_size < 1:
        raise ValueError(f"labeling.chunk_size: must be >= 1, got {chunk_size}")
    if chunk_index < 0:
        raise ValueError(f"chunk index must be >= 0, got {chunk_index}")
    start = min(chunk_index * chunk_size, n_frames)
    return slice(start, min(start + chunk_size, n_frames))


def checkpoint_path(db_out: str | os.PathLike) -> Path:
    """Checkpoint DB of a chunk whose final DB is ``db_out`` (``chunk3.db`` -> ``chunk3.partial.db``)."""
    db_out = Path(db_out)
    return db_out.with_name(f"{db_out.stem}.partial.db")


def load_checkpoint(path: Path, level: LevelSettings, wanted_ids: set[str]) -> dict[str, Labelled]:
    """Rows of a checkpoint DB labelled at ``level`` whose frame_id is wanted; discards a stale one."""
    if not path.exists():
        return {}
    try:
        stored_level = db_level(path)
        rows = list(iter_label_rows(path))
    except Exception as exc:  # a checkpoint is a cache: unreadable means start afresh
        _LOG.warning("%s: unreadable checkpoint discarded (%s)", path, exc)
        path.unlink()
        return {}
    if stored_level != level.to_dict():
        _LOG.warning("%s: checkpoint labelled with %s, now %s; discarded", path, stored_level, level.to_dict())
        path.unlink()
        return {}
    done = {meta["frame_id"]: (atoms, props, meta) for atoms, props, meta in rows if meta["frame_id"] in wanted_ids}
    _LOG.info("%s: resuming with %d labelled frames", path, len(done))
    return done


def _label_one(frame: Any, level: LevelSettings) -> tuple[list[Labelled], list[dict[str, Any]]]:
    """:func:`label_frames` of one frame with single-threaded PySCF, in a worker process."""
    from pyscf import lib

    with lib.with_omp_threads(1):
        return label_frames([frame], level, progress=False)


def label_frames_parallel(
    frames: list[Any],
    level: LevelSettings,
    *,
    workers: int,
    on_labelled: Any = None,
) -> tuple[list[Labelled], list[dict[str, Any]]]:
    """:func:`label_frames` with ``workers`` processes, one frame each at a time, each PySCF
    single-threaded; same return value and ``on_labelled`` calls, in input order.

    Why processes and not PySCF's OpenMP threads: PySCF's multi-threaded integral and J/K loops
    (dynamic scheduling, per-thread buffers summed at the end) give labels that differ between
    runs in the last bits (≈5e-12 eV, 7e-13 eV/Å; on the demo frame at HF/STO-3G 4 of 4 repeats
    differed at 2 threads, none of 3 at 1), and chaotic MD on models trained on them amplifies
    that into different results. One thread per frame is bit-reproducible and independent of
    ``workers``. The calling process must not have run OpenMP/BLAS threads yet (workers are forked).
    """
    if workers <= 1 or len(frames) <= 1:
        from pyscf import lib

        with lib.with_omp_threads(1):
            return label_frames(frames, level, on_labelled=on_labelled)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    labelled: list[Labelled] = []
    report: list[dict[str, Any]] = []
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(workers, len(frames)), mp_context=context) as pool:
        for index, (done, entries) in enumerate(pool.map(_label_one, frames, [level] * len(frames))):
            for atoms, props, meta in done:
                labelled.append((atoms, props, meta))
                if on_labelled is not None:
                    on_labelled(atoms, props, meta)
            for entry in entries:
                entry["index"] = index
                _LOG.info("frame %d (%s): %s, %.2f s", index, entry["frame_id"], entry["status"], entry["wall_s"])
            report.extend(entries)
    return labelled, report


@contextmanager
def _log_to_file(log_path: str | os.PathLike | None) -> Iterator[None]:
    """Send the 'mlmm' log records to ``log_path`` unless a handler already writes there."""
    if log_path is None:
        yield
        return
    target = os.path.abspath(log_path)
    logger = logging.getLogger("mlmm")
    handlers = logging.getLogger().handlers + logger.handlers
    if any(isinstance(h, logging.FileHandler) and h.baseFilename == target for h in handlers):
        yield
        return
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(target, mode="a")
    handler.setFormatter(logging.Formatter(FORMAT))
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        handler.close()


def label_chunk(
    frames_path: str | os.PathLike,
    chunk_index: int,
    chunk_size: int,
    level: LevelSettings,
    db_out: str | os.PathLike,
    report_out: str | os.PathLike,
    log_path: str | os.PathLike | None = None,
    workers: int = 1,
) -> ChunkReport:
    """Label frames ``chunk_slice(...)`` of ``frames_path``; write ``db_out`` and ``report_out``.

    Resumes from ``checkpoint_path(db_out)`` if an earlier run of this chunk was killed. ``workers``
    single-threaded processes label frames side by side (see :func:`label_frames_parallel`).
    Returns the report (also written as JSON): chunk settings, counts, and one entry per frame
    with ``status`` ('ok' or the failure reason), ``resumed`` and timings (s).
    """
    start = time.perf_counter()
    with _log_to_file(log_path):
        all_frames = read_frames(frames_path)
        window = chunk_slice(len(all_frames), chunk_size, chunk_index)
        frames = all_frames[window]
        ids = [frame_id(f) for f in frames]
        ckpt = checkpoint_path(db_out)
        done = load_checkpoint(ckpt, level, set(ids))
        todo = [(k, f) for k, (f, fid) in enumerate(zip(frames, ids)) if fid not in done]
        _LOG.info("%s chunk %d: frames %d..%d, %d to label (%d resumed), %s", frames_path, chunk_index,
                  window.start, window.stop, len(todo), len(done), level.label)
        if todo and not ckpt.exists():
            create_label_db(ckpt, level.to_dict())
        labelled, entries = label_frames_parallel(
            [f for _, f in todo],
            level,
            workers=workers,
            on_labelled=lambda atoms, props, meta: append_label_rows(ckpt, [(atoms, props, meta)]),
        )
        new = {meta["frame_id"]: (atoms, props, meta) for atoms, props, meta in labelled}
        report_by_pos = {k: dict(entry, resumed=False) for (k, _), entry in zip(todo, entries)}
        rows: list[Labelled] = []
        frame_entries: list[dict[str, Any]] = []
        for k, fid in enumerate(ids):
            entry = report_by_pos.get(k)
            if entry is None:
                row = done[fid]
                entry = {"frame_id": fid, "status": "ok", "resumed": True, "energy_ev": float(row[1]["energy"][0])}
            else:
                row = new.get(fid) if entry["status"] == "ok" else None
            entry["index"] = window.start + k
            frame_entries.append(entry)
            if row is not None:
                rows.append(row)
        write_label_db(db_out, rows, level.to_dict())
        n_ok = sum(e["status"] == "ok" for e in frame_entries)
        report = ChunkReport(
            frames_path=str(frames_path),
            chunk_index=chunk_index,
            chunk_size=chunk_size,
            frame_range=[window.start, window.stop],
            level=level.to_dict(),
            pyscf_version=PYSCF_VERSION,
            n_frames=len(frames),
            n_ok=n_ok,
            n_failed=len(frames) - n_ok,
            n_resumed=sum(e["resumed"] for e in frame_entries),
            wall_s=time.perf_counter() - start,
            frames=frame_entries,
        )
        report.to_json(report_out)
        if ckpt.exists():
            ckpt.unlink()
        _LOG.info("chunk %d: %d ok, %d failed, %.1f s", chunk_index, n_ok, report.n_failed, report.wall_s)
    return report
