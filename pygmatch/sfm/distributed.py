"""Where a collection's work runs: in this process (``InProcess``, the default, nothing to set up)
or on the workers of a Dask cluster (``DaskExecutor``): a local one it starts (``workers=N``
processes of one thread each) or an existing one at ``scheduler="tcp://HOST:PORT"``. Both offer
the same two calls: ``share(obj)`` (an object tasks use: the pipeline, an image's features; Dask
sends it to a worker once and copies it to the others that need it) and ``map(function, argument tuples)``, which yields
the results as tasks finish. A task whose worker dies is run again on another (Dask reschedules
it; ``retries`` more times if it raises). Workers of an existing cluster need pygmatch installed
and the photographs at the same path (they read them to extract features).
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

from ..errors import PygmatchError

DASK_INSTALL = 'pip install "dask[distributed]" (or pip install -e ".[sfm]")'


class InProcess:
    """Every task in this process, one after the other, in order."""

    workers = 1

    def share(self, obj, everywhere: bool = False):
        return obj

    def map(self, function: Callable, arguments: Iterable[tuple]) -> Iterator:
        for args in arguments:
            yield function(*args)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return "in-process"


# glibc's malloc in the workers --workers starts: buffers below 1 GiB come from the heap and freed memory stays there
# (up to 1 GiB at its top), so the (E, 64) tensors of the network and the similarity blocks of a pair reuse memory
# already mapped instead of faulting fresh pages in, pair after pair. A worker keeps the memory of its largest pair.
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": 1 << 30, "MALLOC_TRIM_THRESHOLD_": 1 << 30}


class DaskExecutor(InProcess):
    """Tasks on a Dask cluster: a ``LocalCluster`` of ``workers`` processes (one thread each,
    ``OMP_NUM_THREADS=1``) or the existing cluster whose scheduler is at ``scheduler``."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, retries: int = 2, timeout: float = 30):
        try:
            from distributed import Client, LocalCluster  # noqa: PLC0415
        except ImportError:
            raise PygmatchError(f"--workers / --scheduler need Dask: {DASK_INSTALL}") from None
        if (workers is None) == (scheduler is None):
            raise PygmatchError("give either a number of workers (a local Dask cluster) or a scheduler address, not both")
        self.retries, self.cluster = retries, None
        if scheduler is not None:
            try:
                self.client = Client(scheduler, timeout=timeout)
            except (OSError, TimeoutError, ValueError) as e:
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise PygmatchError(f"{scheduler}: cannot connect to a Dask scheduler ({reason})") from None
        else:
            if workers < 1:
                raise PygmatchError(f"workers must be >= 1, got {workers}")
            import dask  # noqa: PLC0415

            # Dask's own list also sets MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's mmap threshold: every large
            # buffer is then mapped and unmapped anew, and Pipeline.match of one sacre_coeur pair at 4096 keypoints took
            # 0.39-0.40 s against 0.25-0.29 s without it (docs/collection.md). WORKER_MALLOC keeps them in the heap instead.
            with dask.config.set({"distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1,
                                                                          "OPENBLAS_NUM_THREADS": 1, **WORKER_MALLOC}}):
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            self.client = Client(self.cluster)
        self.workers = len(self.client.scheduler_info()["workers"]) or workers or 1
        self.address = scheduler or self.cluster.scheduler_address

    def share(self, obj, everywhere: bool = False):
        """``obj`` sent once to one worker (Dask copies it to others as their tasks need it), or to
        every worker (``everywhere``: the pipeline)."""
        return self.client.scatter(obj, broadcast=everywhere, hash=False)

    def map(self, function: Callable, arguments: Iterable[tuple]) -> Iterator:
        from distributed import as_completed  # noqa: PLC0415
        from distributed.client import FutureCancelledError  # noqa: PLC0415
        from distributed.scheduler import KilledWorker  # noqa: PLC0415

        futures = [self.client.submit(function, *args, pure=False, retries=self.retries) for args in arguments]
        try:
            for future in as_completed(futures):
                yield future.result()
        except KilledWorker as e:
            raise PygmatchError(f"Dask: a task killed every worker it ran on ({e}); the results stored so far are kept") from None
        except FutureCancelledError:
            raise PygmatchError("Dask: the scheduler cancelled the work (did the cluster stop?); the results stored so far are kept") from None
        finally:
            self.client.cancel(futures)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __repr__(self) -> str:
        return f"Dask at {self.address} ({self.workers} worker{'s' if self.workers != 1 else ''})"


def executor(workers: int | None = None, scheduler: str | None = None) -> InProcess:
    """``InProcess()`` when neither is given, else a ``DaskExecutor``."""
    return InProcess() if workers is None and scheduler is None else DaskExecutor(workers, scheduler)
