r"""Asymmetric numeral systems (range variant, rANS), vectorized over independent streams.

An entropy coder that stores a message as one integer, the *state*, which grows by about
:math:`-\log_2 P(s)` bits when a symbol s of probability P(s) is pushed, and shrinks by as
much when it is popped (Duda 2009; the form used by Townsend, Bird & Barber 2019). Taught
in ``notebooks/13_bits_back.ipynb``; :mod:`scratchvae.bits_back` builds bits-back coding
on it.

**Symbols as integer intervals.** A distribution is given at a precision of p bits: symbol
s owns the interval ``[start_s, start_s + freq_s)`` of ``[0, 2^p)``, with
:math:`P(s) \approx f_s / 2^p` and every frequency at least 1 (a symbol of frequency 0
could not be coded). The coder is exact for these integers, whatever real
probabilities they approximate.

**Push and pop.** With state x, pushing s gives

.. math:: x' = \lfloor x / f_s \rfloor \, 2^p + (x \bmod f_s) + \mathrm{start}_s,

and popping reads the symbol from the low p bits of x' (the "cumulative frequency"
:math:`c = x' \bmod 2^p` lies in s's interval) and undoes the push,
:math:`x = f_s \lfloor x' / 2^p \rfloor + c - \mathrm{start}_s`. Pop exactly inverts
push, so the stream is a **stack**: symbols come back last in, first out. That is why a
decoder reverses the order of the encoder, and why bits-back coding can *pop* a symbol
from a stream that holds other data: the encoder reads the symbol off the stream as a
decoder would, and the receiver puts those bits back by pushing it.

**Renormalization: the state invariant.** Each stream keeps a 64-bit *head*
:math:`x \in [2^{32}, 2^{64})` and a *body*: a stack of 32-bit words. Before a push, if
:math:`x \ge f_s \, 2^{64-p}` the low 32 bits of x move onto the body (one move is enough
for p <= 32); after a pop, if :math:`x < 2^{32}` a word moves back from the body. Both
keep x in :math:`[2^{32}, 2^{64})`, so the arithmetic fits in uint64, and a push of s adds
:math:`\log_2(2^p / f_s)` bits to the message up to a rounding of a fraction of a bit
spread over the whole message.

**Vectorized.** :class:`ANS` holds S streams at once (``head`` (S,) uint64, the bodies as
rows of a growable (S, capacity) uint32 array with their lengths); every operation takes
one symbol for each stream of a subset ``streams`` (distinct stream indices, default all)
and runs as a handful of NumPy operations, whatever S.

**Clean bits.** Popping from a fresh message needs bits that are not there yet (bits-back
coding pops before it has pushed anything). A stream created with ``clean=True`` starts
with head :math:`2^{32} + w_0` and, when its body runs out during a pop, takes the next
word :math:`w_1, w_2, \dots` of a fixed pseudo-random sequence of its own (a hash of the
stream index and the word's number): these *clean bits* are part of the message, and a
decoder that has undone every operation is left with exactly them
(:meth:`ANS.check_fresh`). A stream read from bytes (``clean=False``) never invents bits:
running out raises :class:`ANSError`, the sign of truncated or damaged data.
"""

from __future__ import annotations

import numpy as np

#: Lower bound of the head: the state invariant is ``2**32 <= head < 2**64``.
HEAD_MIN = 1 << 32
WORD_BITS = 32
_MASK32 = np.uint64(0xFFFFFFFF)


class ANSError(ValueError):
    """Bad input to the coder, or a stream that cannot be decoded (truncated, damaged)."""


def _mix64(z: np.ndarray) -> np.ndarray:
    """The SplitMix64 finalizer (uint64 -> uint64, wrapping): a fixed hash."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def clean_words(streams, numbers) -> np.ndarray:
    """Word ``numbers`` (k,) of the clean-bit sequences of ``streams`` (k,): uint32 (k,)."""
    key = (np.asarray(streams, np.uint64) << np.uint64(32)) | np.asarray(numbers, np.uint64)
    return (_mix64(key + np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)).astype(np.uint32)


def check_precision(precision, name: str = "precision") -> int:
    """An integer number of bits in 1..32 (the largest the 64-bit head allows)."""
    if not isinstance(precision, (int, np.integer)) or isinstance(precision, bool) \
            or not 1 <= precision <= 32:
        raise ANSError(f"{name} must be an integer in 1..32, got {precision!r}")
    return int(precision)


class ANS:
    """S independent rANS streams (see the module's docstring for the math).

    Parameters
    ----------
    n_streams : int
        S, the number of streams.
    clean : bool
        Fresh streams that draw clean bits when a pop runs out of words (an encoder's
        message); ``False``: running out raises :class:`ANSError` (a decoder's).
    """

    def __init__(self, n_streams: int, clean: bool = True):
        if not isinstance(n_streams, (int, np.integer)) or n_streams < 1:
            raise ANSError(f"n_streams must be an integer >= 1, got {n_streams!r}")
        self.n_streams = int(n_streams)
        self.clean = bool(clean)
        self.head = np.uint64(HEAD_MIN) + clean_words(np.arange(n_streams),
                                                      np.zeros(n_streams)).astype(np.uint64)
        self.words = np.zeros((n_streams, 64), dtype=np.uint32)
        self.lengths = np.zeros(n_streams, dtype=np.int64)
        self.n_clean = np.zeros(n_streams, dtype=np.int64)  # clean words drawn so far

    # ---- the body: stacks of 32-bit words ------------------------------------------
    def _push_words(self, idx: np.ndarray, w: np.ndarray) -> None:
        if idx.size == 0:
            return
        need = int(self.lengths[idx].max()) + 1
        if need > self.words.shape[1]:
            grown = np.zeros((self.n_streams, max(need, 2 * self.words.shape[1])), np.uint32)
            grown[:, :self.words.shape[1]] = self.words
            self.words = grown
        self.words[idx, self.lengths[idx]] = w
        self.lengths[idx] += 1

    def _pop_words(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty(idx.size, dtype=np.uint32)
        empty = self.lengths[idx] == 0
        if empty.any():
            if not self.clean:
                raise ANSError(f"stream {int(idx[empty][0])} ran out of words: the data are "
                               f"truncated or damaged")
            fresh = idx[empty]
            self.n_clean[fresh] += 1
            out[empty] = clean_words(fresh, self.n_clean[fresh])
        full = idx[~empty]
        self.lengths[full] -= 1
        out[~empty] = self.words[full, self.lengths[full]]
        return out

    def _index(self, streams) -> np.ndarray:
        if streams is None:
            return np.arange(self.n_streams)
        idx = np.asarray(streams)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ANSError(f"streams must be a 1-D integer array, got shape {idx.shape} "
                           f"and dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_streams):
            raise ANSError(f"streams must lie in 0..{self.n_streams - 1}")
        seen = np.zeros(self.n_streams, dtype=bool)
        seen[idx] = True
        if np.count_nonzero(seen) != idx.size:
            raise ANSError("streams must be distinct (one symbol per stream per call)")
        return idx.astype(np.int64)

    @staticmethod
    def _check_interval(starts, freqs, p: int, k: int):
        starts, freqs = np.asarray(starts), np.asarray(freqs)
        for name, a in (("starts", starts), ("freqs", freqs)):
            if a.shape != (k,) or not np.issubdtype(a.dtype, np.integer):
                raise ANSError(f"{name} must be an integer array of shape ({k},), got "
                               f"shape {a.shape} and dtype {a.dtype}")
        if k and (freqs.min() < 1 or starts.min() < 0
                  or (starts.astype(np.int64) + freqs).max() > (1 << p)):
            raise ANSError(f"each symbol needs freqs >= 1, starts >= 0 and starts + freqs <= "
                           f"2**{p}")
        return starts.astype(np.uint64), freqs.astype(np.uint64)

    # ---- push and pop --------------------------------------------------------------
    def push(self, starts, freqs, precision: int, streams=None) -> None:
        """Push one symbol on each of ``streams``: its interval ``[starts, starts + freqs)``
        (each (k,) integers) of ``[0, 2**precision)``."""
        p = check_precision(precision)
        idx = self._index(streams)
        s, f = self._check_interval(starts, freqs, p, idx.size)
        x = self.head[idx]
        out = (x >> np.uint64(64 - p)) >= f          # x >= f * 2**(64 - p)
        self._push_words(idx[out], (x[out] & _MASK32).astype(np.uint32))
        x[out] >>= np.uint64(WORD_BITS)
        self.head[idx] = ((x // f) << np.uint64(p)) + (x % f) + s

    def peek(self, precision: int, streams=None) -> np.ndarray:
        """The cumulative frequency ``head mod 2**precision`` (k,) uint64 of ``streams``:
        the symbol to pop is the one whose interval holds it."""
        p = check_precision(precision)
        return self.head[self._index(streams)] & np.uint64((1 << p) - 1)

    def pop(self, starts, freqs, precision: int, streams=None) -> None:
        """Finish popping the symbols found by :meth:`peek` (their intervals, (k,) each)."""
        p = check_precision(precision)
        idx = self._index(streams)
        s, f = self._check_interval(starts, freqs, p, idx.size)
        x = self.head[idx]
        c = x & np.uint64((1 << p) - 1)
        if np.any((c < s) | (c >= s + f)):
            raise ANSError("the intervals given to pop do not hold the peeked values")
        x = f * (x >> np.uint64(p)) + c - s
        low = x < np.uint64(HEAD_MIN)
        x[low] = (x[low] << np.uint64(WORD_BITS)) | self._pop_words(idx[low]).astype(np.uint64)
        self.head[idx] = x

    # ---- size, bytes, checks -------------------------------------------------------
    def n_bits(self) -> int:
        """The length in bits of :meth:`to_bytes`: 64 per head, 32 per body length and 32
        per word."""
        return 96 * self.n_streams + WORD_BITS * int(self.lengths.sum())

    def to_bytes(self) -> bytes:
        """The streams as bytes (little-endian): the S heads (uint64), the S body lengths
        (uint32), then every body's words (uint32), stream after stream, bottom first."""
        body = np.concatenate([self.words[i, :n] for i, n in enumerate(self.lengths)])
        return (self.head.astype("<u8").tobytes() + self.lengths.astype("<u4").tobytes()
                + body.astype("<u4").tobytes())

    @classmethod
    def from_bytes(cls, data: bytes, n_streams: int) -> ANS:
        """S streams read from :meth:`to_bytes`'s bytes, for decoding (``clean=False``).
        Raises :class:`ANSError` when the bytes cannot be such streams."""
        table = 12 * n_streams
        if len(data) < table:  # checked first: n_streams is bounded by the data's size
            raise ANSError(f"the streams need at least {table} bytes, got {len(data)}")
        ans = cls(n_streams, clean=False)
        head = np.frombuffer(data, "<u8", n_streams).astype(np.uint64)
        lengths = np.frombuffer(data, "<u4", n_streams, 8 * n_streams).astype(np.int64)
        if len(data) != table + 4 * int(lengths.sum()):
            raise ANSError(f"the streams' lengths need {table + 4 * int(lengths.sum())} "
                           f"bytes, got {len(data)}")
        if np.any(head < np.uint64(HEAD_MIN)):
            raise ANSError("a stream's head is below 2**32: not a valid state")
        words = np.frombuffer(data, "<u4", offset=table).astype(np.uint32)
        ans.head = head
        ans.words = np.zeros((n_streams, max(64, int(lengths.max()) + 1)), np.uint32)
        ans.words[np.repeat(np.arange(n_streams), lengths),
                  np.concatenate([np.arange(n) for n in lengths])] = words
        ans.lengths = lengths
        return ans

    def check_fresh(self) -> None:
        """Raise :class:`ANSError` unless every stream is back in a fresh stream's state,
        holding the clean words an encoder drew (the last drawn at the bottom): what a
        decoder must find after undoing every push and pop of the encoder."""
        fresh = ANS(self.n_streams)
        if not np.array_equal(self.head, fresh.head):
            raise ANSError("the streams did not return to their initial state")
        for i, n in enumerate(self.lengths):
            expected = clean_words(np.full(n, i), np.arange(n, 0, -1))
            if not np.array_equal(self.words[i, :n], expected):
                raise ANSError(f"stream {i} did not return to its initial state")


# ---- codecs: integer intervals from probabilities ------------------------------------

def quantize_cdf(cdf, precision: int) -> np.ndarray:
    r"""Integer cumulative frequencies of K-symbol distributions, every frequency >= 1.

    ``cdf`` (n, K + 1) float, nondecreasing from 0 to 1 along each row;
    returns (n, K + 1) int64 :math:`F_i = \mathrm{round}(C_i (2^p - K)) + i`, so that
    :math:`F_0 = 0`, :math:`F_K = 2^p` and :math:`f_i = F_{i+1} - F_i \ge 1`. The
    round-off moves at most :math:`K / 2^p` of probability.
    """
    p = check_precision(precision)
    c = np.asarray(cdf, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 2:
        raise ANSError(f"cdf must have shape (n, K + 1) with K >= 1, got {c.shape}")
    k = c.shape[1] - 1
    if k >= 1 << p:
        raise ANSError(f"precision {p} cannot give each of {k} symbols a frequency >= 1")
    if not np.all(np.isfinite(c)) or np.any(np.diff(c, axis=1) < 0) \
            or np.any(c[:, 0] != 0) or np.any(c[:, -1] != 1):
        raise ANSError("cdf must be finite and nondecreasing from 0 to 1 along each row")
    return np.rint(c * ((1 << p) - k)).astype(np.int64) + np.arange(k + 1)


def bernoulli_cdf(p1, precision: int) -> np.ndarray:
    """The integer table (n, 3) of Bernoulli variables with P(1) = ``p1`` (n,): symbol 0
    is ``[0, 2^p - f_1)``, symbol 1 ``[2^p - f_1, 2^p)``, with
    :math:`f_1 = \\mathrm{clip}(\\mathrm{round}(p_1 2^p), 1, 2^p - 1)`."""
    p = check_precision(precision)
    if p < 2:
        raise ANSError(f"precision must be >= 2 for a Bernoulli codec, got {p}")
    q = np.asarray(p1, dtype=np.float64)
    if q.ndim != 1 or not np.all((q >= 0) & (q <= 1)):
        raise ANSError("p1 must be a 1-D array of probabilities in [0, 1]")
    f1 = np.clip(np.rint(q * (1 << p)), 1, (1 << p) - 1).astype(np.int64)
    total = np.full_like(f1, 1 << p)
    return np.stack([np.zeros_like(f1), total - f1, total], axis=1)


def push_symbols(ans: ANS, symbols, cdf, precision: int, streams=None) -> None:
    """Push ``symbols`` (k,) with the integer tables ``cdf`` (k, K + 1), one per stream."""
    sym, table = _symbols_and_table(symbols, cdf)
    rows = np.arange(len(sym))
    start = table[rows, sym]
    ans.push(start, table[rows, sym + 1] - start, precision, streams)


def pop_symbols(ans: ANS, cdf, precision: int, streams=None) -> np.ndarray:
    """Pop one symbol per stream with the integer tables ``cdf`` (k, K + 1); (k,) int64."""
    table = np.asarray(cdf, dtype=np.int64)
    c = ans.peek(precision, streams).astype(np.int64)
    if table.ndim != 2 or table.shape[0] != c.size:
        raise ANSError(f"cdf must have shape ({c.size}, K + 1), got {table.shape}")
    sym = (table[:, 1:-1] <= c[:, None]).sum(axis=1)
    rows = np.arange(c.size)
    start = table[rows, sym]
    ans.pop(start, table[rows, sym + 1] - start, precision, streams)
    return sym


def push_uniform(ans: ANS, symbols, bits: int, streams=None) -> None:
    """Push ``symbols`` (k,) in 0..2^bits - 1, each of probability 2^-bits (freq 1)."""
    sym = np.asarray(symbols)
    if sym.ndim != 1 or not np.issubdtype(sym.dtype, np.integer):
        raise ANSError(f"symbols must be a 1-D integer array, got shape {sym.shape}")
    ans.push(sym, np.ones_like(sym), bits, streams)


def pop_uniform(ans: ANS, bits: int, streams=None) -> np.ndarray:
    """Pop one symbol of :func:`push_uniform` per stream: (k,) int64."""
    sym = ans.peek(bits, streams).astype(np.int64)
    ans.pop(sym, np.ones_like(sym), bits, streams)
    return sym


def _symbols_and_table(symbols, cdf):
    sym, table = np.asarray(symbols), np.asarray(cdf, dtype=np.int64)
    if sym.ndim != 1 or not np.issubdtype(sym.dtype, np.integer):
        raise ANSError(f"symbols must be a 1-D integer array, got shape {sym.shape} and "
                       f"dtype {sym.dtype}")
    if table.ndim != 2 or table.shape[0] != sym.size:
        raise ANSError(f"cdf must have shape ({sym.size}, K + 1), got {table.shape}")
    if sym.size and (sym.min() < 0 or sym.max() >= table.shape[1] - 1):
        raise ANSError(f"symbols must lie in 0..{table.shape[1] - 2}")
    return sym.astype(np.int64), table


def information_bits(freqs, precision: int) -> np.ndarray:
    r"""The information content :math:`\log_2(2^p / f)` in bits of symbols of frequency
    ``freqs`` at precision p: what a push adds to the message, up to rounding."""
    return precision - np.log2(np.asarray(freqs, dtype=np.float64))
