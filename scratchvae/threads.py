"""How many CPU threads the library uses: a fixed number, or chosen by measuring.

The only threads scratchvae runs are those of the BLAS library behind NumPy's matrix
products (OpenBLAS in NumPy's wheels); element-wise work runs on one core. How many BLAS
threads are best depends on what else the machine is doing. On an idle 2-core machine
two threads are faster than one (by about 25 % for the 784-400-20 VAE); when another
process keeps one core busy, the two threads keep waiting for each other and one thread
is 2-3 times faster. A lab machine or a hosted notebook is often busy in this way.

``Threads("auto")`` (the default of every command) therefore measures instead of
guessing: before the work starts, :meth:`Threads.choose` times a few repetitions of one
step of it (a forward and backward pass, say) with one thread and with all of them,
taking turns, and keeps the faster. This takes about half a second, once per command.

The thread count changes the rounding of OpenBLAS's matrix products (one thread and two
give results that differ in the last bits), so a run is reproducible bit for bit for a
given count: a fixed ``--threads N`` makes reruns identical whatever the load, and a
resumed ``auto`` run keeps the count its checkpoint was trained with.

The limits are set with threadpoolctl, which finds the BLAS and OpenMP libraries loaded
in the process, and restored when the ``with`` block ends.
"""

from __future__ import annotations

import os
import statistics
import time

from threadpoolctl import ThreadpoolController

AUTO = "auto"


def available_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_threads(value, name: str = "threads"):
    """``value`` if it is ``"auto"`` or an integer >= 1, else a ``ValueError`` naming it."""
    if value == AUTO:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"{name} must be 'auto' or an integer >= 1, got {value!r}")


def _run_for(work, seconds: float, min_calls: int) -> tuple[int, float]:
    """Call ``work()`` at least ``min_calls`` times and until ``seconds`` have passed;
    return the number of calls and the time they took."""
    t0 = time.perf_counter()
    calls = 0
    while calls < min_calls or time.perf_counter() - t0 < seconds:
        work()
        calls += 1
    return calls, time.perf_counter() - t0


class Threads:
    """The number of threads for a piece of work.

    ``with threads:`` sets it (for every BLAS and OpenMP library in the process) and
    restores the previous counts afterwards. For ``"auto"``, call :meth:`choose` first.

    Parameters
    ----------
    threads : "auto" or int
    max_threads : int, optional
        The most threads ``"auto"`` tries (default: the cores available to the process).
    split : bool
        Whether the count is the number of Python threads the work is split across
        (:class:`scratchvae.parallel.Split`), each then running BLAS on one thread, rather
        than the number of BLAS threads of one caller. With ``split``, :meth:`choose`
        calls ``work(n)``.

    Attributes
    ----------
    choice : int or None
        The count the ``with`` block uses (``None`` until ``"auto"`` has chosen).
    timings : dict
        ``count -> [seconds per call, one per round]``, from :meth:`choose`.
    """

    def __init__(self, threads=AUTO, max_threads: int | None = None, split: bool = False):
        self.threads = check_threads(threads)
        self.split = split
        self.max_threads = max_threads or available_cores()
        self.candidates = (1, self.max_threads) if self.max_threads > 1 else (1,)
        if threads == AUTO:
            self.choice = None if len(self.candidates) > 1 else 1  # one core: nothing to try
        else:
            self.choice = threads
        self.timings: dict[int, list[float]] = {}
        self._limiter = None

    def choose(self, work, rounds: int = 3, settle: float = 0.03, measure: float = 0.06) -> int:
        """For ``"auto"``: the faster count for ``work()`` (a callable doing one step).

        In each of ``rounds`` rounds every candidate takes a turn (in the opposite order
        in every other round): the count is set, calls run untimed for ``settle``
        seconds (threads that were just resized or woken up, and threads of the other
        count still spinning, slow the first calls down), then for ``measure`` seconds
        more, timed. The count with the smaller median time per call is kept. A fixed
        count is returned as it is, without running anything.
        """
        if self.choice is not None:
            return self.choice
        controller = ThreadpoolController()
        limiter = controller.limit(limits=self.candidates[0])
        try:
            for r in range(rounds):
                for n in self.candidates[::-1] if r % 2 else self.candidates:
                    controller.limit(limits=1 if self.split else n)
                    step = (lambda n=n: work(n)) if self.split else work
                    _run_for(step, settle, min_calls=1)
                    calls, seconds = _run_for(step, measure, min_calls=1)
                    self.timings.setdefault(n, []).append(seconds / calls)
        finally:
            limiter.restore_original_limits()
        self.choice = min(self.timings, key=lambda n: statistics.median(self.timings[n]))
        return self.choice

    def __enter__(self):
        count = self.max_threads if self.choice is None else self.choice
        self._limiter = ThreadpoolController().limit(limits=1 if self.split else count)
        return self

    def __exit__(self, *exc):
        self._limiter.restore_original_limits()
        self._limiter = None
        return False

    def __repr__(self) -> str:
        return f"Threads({self.threads!r}, choice={self.choice!r})"
