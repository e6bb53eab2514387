"""Independent NumPy work on several CPU cores at once.

NumPy's loops (ufuncs, reductions) and its BLAS calls release the GIL, so Python threads
that each work on their own slice of the data run truly in parallel. This module holds
the one helper the library uses for that, :class:`Split`, off the teaching path: the
math modules stay plain, single-threaded functions, and the places that run them on
several cores (the importance-weighted evaluation today) call them on slices.

Each thread then runs its matrix products with one BLAS thread (the caller sets that,
see :class:`scratchvae.threads.Threads`): ``n`` threads use ``n`` cores, never more, which
is what a busy machine needs. On CuPy and the strict stand-in nothing is split.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


def split_range(n: int, parts: int) -> list[tuple[int, int]]:
    """``range(n)`` cut into at most ``parts`` contiguous ``(start, stop)`` pieces of
    nearly equal size (none empty)."""
    parts = max(1, min(parts, n))
    bounds = [n * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


class Split:
    """Run ``fn(start, stop)`` over pieces of a range on ``n_threads`` threads.

    The calling thread takes the first piece, a pool of ``n_threads - 1`` threads the
    others; :meth:`map` returns the results in order. ``with Split(n) as split:`` shuts
    the pool down afterwards. With one thread everything runs in the caller.
    """

    def __init__(self, n_threads: int):
        self.n_threads = max(1, int(n_threads))
        self._pool = ThreadPoolExecutor(self.n_threads - 1) if self.n_threads > 1 else None

    def map(self, fn, n: int) -> list:
        pieces = split_range(n, self.n_threads)
        if self._pool is None or len(pieces) == 1:
            return [fn(start, stop) for start, stop in pieces]
        futures = [self._pool.submit(fn, start, stop) for start, stop in pieces[1:]]
        first = fn(*pieces[0])
        return [first, *(f.result() for f in futures)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
