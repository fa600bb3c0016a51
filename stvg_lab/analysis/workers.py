"""Run independent jobs (a grid's training runs) in spawned worker processes, each on its own CPU threads.

Why: the stand-in's GRPO step is too small to keep several threads busy, so ``make demo`` trained its grid one
run after the other on one thread (``OMP_NUM_THREADS=1``), a core idle. Two runs side by side, one thread each,
take 2.61 s a step against 2.46 s one after the other, and the demo's grid 812 s against 1,519 s
(bench/README.md, session 25). At the same thread count the weights are the same bit for bit; another count
sums floats in another order and may train other digits, each repeatable.

A job is ``(fn, args, log_path)``: ``fn(*args)`` runs in a worker whose stdout and stderr (TRL's
progress bars, warnings) go to ``log_path`` instead of the parent's terminal, so two runs do not
interleave. ``fn`` and ``args`` must pickle (module-level functions, ``functools.partial`` of them).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import sys
from concurrent.futures import FIRST_EXCEPTION, CancelledError, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Sequence

logger = logging.getLogger(__name__)

Job = tuple[Callable[..., Any], tuple, Path]


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """The CPU threads each of ``workers`` processes gets: the machine's CPUs shared out, at least one."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, workers))


def check_picklable(**objects: Any) -> None:
    """Raise TypeError naming the first object that cannot be sent to a worker process."""
    for name, obj in objects.items():
        try:
            pickle.dumps(obj)
        except Exception as e:  # noqa: BLE001 - pickle raises several types (PicklingError, AttributeError, TypeError)
            raise TypeError(
                f"{name} cannot be sent to a worker process ({type(e).__name__}: {e}); with workers > 1 pass a "
                "module-level function or a functools.partial of one, or use workers=1"
            ) from None


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")


def _call_logged(fn: Callable[..., Any], args: tuple, log_path: Path) -> Any:
    """``fn(*args)`` with file descriptors 1 and 2 (C-level writes too) sent to ``log_path``, restored after."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            return fn(*args)
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_in_workers(jobs: Sequence[Job], workers: int, threads: int, stop_on_error: bool = True) -> list[Any]:
    """Run every job on ``workers`` spawned processes of ``threads`` torch threads; their results, in job order.

    A job that raises leaves its exception in its slot (the caller decides what a failure means).
    With ``stop_on_error`` the jobs not yet started are cancelled after the first failure (their
    slots hold ``concurrent.futures.CancelledError``); jobs already running finish.
    """
    results: list[Any] = [None] * len(jobs)
    # spawn, not fork: the parent holds torch's and tqdm's threads, which fork would copy mid-lock
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
        futures: dict[Future, int] = {}
        for i, (fn, args, log_path) in enumerate(jobs):
            logger.info("worker job %d/%d: %s, output in %s", i + 1, len(jobs), getattr(fn, "__name__", fn), log_path)
            futures[pool.submit(_call_logged, fn, args, Path(log_path))] = i
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            failed = False
            for f in done:
                if f.cancelled():
                    results[futures[f]] = CancelledError(f"job {futures[f] + 1} was not started: an earlier job failed")
                    continue
                try:
                    results[futures[f]] = f.result()
                except Exception as e:  # noqa: BLE001 - kept for the caller, with the worker's traceback as __cause__
                    results[futures[f]] = e
                    failed = True
            if failed and stop_on_error:
                for f in pending:
                    f.cancel()
    return results
