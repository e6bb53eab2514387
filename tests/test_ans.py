"""The rANS coder of ``scratchvae.ans``: exact arithmetic, LIFO round trips over many
streams, a rate within a few bits per stream of the information content, and clear errors.
"""

import math

import numpy as np
import pytest

from scratchvae import ans


def _random_tables(rng, n, k, precision):
    """n random K-symbol distributions (Dirichlet, some nearly deterministic) as floats and
    integer tables."""
    probs = rng.dirichlet(np.full(k, 0.3), size=n)
    cdf = np.minimum(np.concatenate([np.zeros((n, 1)), np.cumsum(probs, axis=1)], axis=1), 1)
    cdf[:, -1] = 1.0
    return probs, ans.quantize_cdf(cdf, precision)


def _draw(rng, probs):
    """One symbol of each row's distribution (n,), by the inverse CDF."""
    u = rng.random(len(probs))
    return np.minimum((np.cumsum(probs, axis=1) < u[:, None]).sum(axis=1), probs.shape[1] - 1)


def test_push_is_the_formula_by_hand():
    """One push and one pop on a state whose numbers are worked out here independently."""
    coder = ans.ANS(1)
    x = int(coder.head[0])
    start, freq, p = 3, 5, 4                       # symbol [3, 8) of [0, 16)
    coder.push(np.array([start]), np.array([freq]), p)
    expected = (x // freq) * 2 ** p + x % freq + start
    assert int(coder.head[0]) == expected and coder.lengths[0] == 0
    assert int(coder.peek(p)[0]) == expected % 16 and 3 <= expected % 16 < 8
    coder.pop(np.array([start]), np.array([freq]), p)
    assert int(coder.head[0]) == x


def test_renormalization_keeps_the_invariant_and_moves_32_bits():
    coder = ans.ANS(3, clean=False)
    coder.head[:] = np.uint64(2 ** 64 - 1)       # a full head: any push must move a word out
    coder.push(np.array([0, 5, 9]), np.array([1, 2, 7]), 4)
    assert list(coder.lengths) == [1, 1, 1]
    assert list(coder.words[:, 0]) == [2 ** 32 - 1] * 3   # the low 32 bits of the old head
    assert np.all(coder.head >= np.uint64(ans.HEAD_MIN))


@pytest.mark.parametrize("n_streams, k, precision", [(1, 2, 8), (7, 5, 16), (16, 300, 24),
                                                     (4, 3, 32)])
def test_round_trip_of_random_symbols(n_streams, k, precision):
    rng = np.random.default_rng(n_streams * 1000 + k)
    n_steps = 400
    tables, symbols = [], []
    coder = ans.ANS(n_streams)
    for _ in range(n_steps):
        probs, table = _random_tables(rng, n_streams, k, precision)
        sym = _draw(rng, probs)
        ans.push_symbols(coder, sym, table, precision)
        tables.append(table)
        symbols.append(sym)
    data = coder.to_bytes()
    assert len(data) * 8 == coder.n_bits()
    decoder = ans.ANS.from_bytes(data, n_streams)
    for table, sym in zip(reversed(tables), reversed(symbols), strict=True):
        np.testing.assert_array_equal(ans.pop_symbols(decoder, table, precision), sym)
    decoder.check_fresh()


def test_subsets_of_streams_and_mixed_codecs_round_trip():
    """Pushes on changing subsets of streams, with categorical, Bernoulli and uniform
    codecs at different precisions, come back in reverse order."""
    rng = np.random.default_rng(5)
    coder = ans.ANS(6)
    log = []
    for step in range(600):
        streams = np.sort(rng.choice(6, rng.integers(1, 7), replace=False))
        kind = step % 3
        if kind == 0:
            _, table = _random_tables(rng, streams.size, 4, 12)
            sym = rng.integers(0, 4, streams.size)
            ans.push_symbols(coder, sym, table, 12, streams)
        elif kind == 1:
            table = ans.bernoulli_cdf(rng.random(streams.size), 20)
            sym = rng.integers(0, 2, streams.size)
            ans.push_symbols(coder, sym, table, 20, streams)
        else:
            table = None
            sym = rng.integers(0, 2 ** 10, streams.size)
            ans.push_uniform(coder, sym, 10, streams)
        log.append((kind, streams, table, sym))
    decoder = ans.ANS.from_bytes(coder.to_bytes(), 6)
    for kind, streams, table, sym in reversed(log):
        if kind == 2:
            got = ans.pop_uniform(decoder, 10, streams)
        else:
            got = ans.pop_symbols(decoder, table, 12 if kind == 0 else 20, streams)
        np.testing.assert_array_equal(got, sym)
    decoder.check_fresh()


def test_rate_is_the_information_content_plus_a_few_bits_per_stream():
    """The message grows by log2(2^p / f) per symbol; what is left over is the initial
    head, the final head's slack and the length fields: under 128 bits per stream, and a
    vanishing fraction of a long message."""
    rng = np.random.default_rng(11)
    n_streams, precision, k = 2, 16, 64
    coder = ans.ANS(n_streams)
    info = 0.0
    rows = np.arange(n_streams)
    for _ in range(5000):
        probs = rng.dirichlet(np.ones(k), size=n_streams)
        cdf = np.minimum(np.concatenate([np.zeros((n_streams, 1)), np.cumsum(probs, 1)], 1), 1)
        cdf[:, -1] = 1.0
        table = ans.quantize_cdf(cdf, precision)
        sym = _draw(rng, probs)
        ans.push_symbols(coder, sym, table, precision)
        info += ans.information_bits(table[rows, sym + 1] - table[rows, sym], precision).sum()
    excess = coder.n_bits() - info
    assert 0 < excess < 128 * n_streams
    assert excess / info < 0.005


def test_pushing_a_certain_symbol_costs_almost_nothing():
    coder = ans.ANS(1)
    table = ans.bernoulli_cdf(np.array([1.0]), 24)   # P(1) = 1 - 2^-24
    for _ in range(10_000):
        ans.push_symbols(coder, np.array([1]), table, 24)
    assert coder.lengths[0] == 0     # 10000 * 8.6e-8 bits: no word has moved out


def test_clean_bits_let_a_fresh_message_pop_and_come_back():
    """Popping from a fresh stream draws clean words; pushing the symbols back leaves the
    stream as :meth:`check_fresh` expects, and a damaged remainder is caught."""
    coder = ans.ANS(3)
    _, table = _random_tables(np.random.default_rng(2), 3, 1000, 24)
    popped = [ans.pop_symbols(coder, table, 24) for _ in range(20)]
    assert coder.n_clean.sum() > 0
    for sym in reversed(popped):
        ans.push_symbols(coder, sym, table, 24)
    coder.check_fresh()
    coder.words[0, 0] ^= 1
    with pytest.raises(ans.ANSError, match="initial state"):
        coder.check_fresh()


def test_quantized_tables_keep_every_symbol_and_the_probabilities():
    rng = np.random.default_rng(1)
    probs, table = _random_tables(rng, 200, 50, 16)
    freqs = np.diff(table, axis=1)
    assert freqs.min() >= 1 and np.all(table[:, -1] == 2 ** 16) and np.all(table[:, 0] == 0)
    # each frequency is within 1 of its share of the 2^16 - K counts left after the floors
    np.testing.assert_allclose(freqs - 1, probs * (2 ** 16 - 50), atol=1.0)
    b = ans.bernoulli_cdf(np.array([0.0, 0.25, 1.0]), 8)
    np.testing.assert_array_equal(b, [[0, 255, 256], [0, 192, 256], [0, 1, 256]])


# ---- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", [0, 33, 1.5, True])
def test_bad_precision_is_named(precision):
    with pytest.raises(ans.ANSError, match="precision"):
        ans.ANS(2).push(np.array([0, 0]), np.array([1, 1]), precision)


@pytest.mark.parametrize("starts, freqs, word", [
    ([0, 0], [0, 1], "freqs >= 1"),
    ([15, 0], [2, 1], "starts \\+ freqs"),
    ([0.0, 1.0], [1, 1], "starts must be an integer"),
    ([0], [1], "shape \\(2,\\)"),
])
def test_bad_intervals_are_refused(starts, freqs, word):
    with pytest.raises(ans.ANSError, match=word):
        ans.ANS(2).push(np.array(starts), np.array(freqs), 4)


def test_bad_streams_and_symbols_are_refused():
    coder = ans.ANS(4)
    with pytest.raises(ans.ANSError, match="distinct"):
        coder.push(np.array([0, 0]), np.array([1, 1]), 4, streams=np.array([1, 1]))
    with pytest.raises(ans.ANSError, match="streams must lie"):
        coder.push(np.array([0]), np.array([1]), 4, streams=np.array([4]))
    with pytest.raises(ans.ANSError, match="symbols must lie"):
        ans.push_symbols(coder, np.array([2, 0, 0, 0]), ans.bernoulli_cdf(np.full(4, .5), 8), 8)
    with pytest.raises(ans.ANSError, match="n_streams"):
        ans.ANS(0)
    with pytest.raises(ans.ANSError, match="nondecreasing"):
        ans.quantize_cdf([[0.0, 0.7, 0.6, 1.0]], 8)
    with pytest.raises(ans.ANSError, match="frequency >= 1"):
        ans.quantize_cdf(np.linspace(0, 1, 300)[None], 8)
    with pytest.raises(ans.ANSError, match="p1"):
        ans.bernoulli_cdf(np.array([1.5]), 8)


def test_truncated_or_invalid_bytes_are_refused():
    coder = ans.ANS(2)
    for _ in range(100):
        ans.push_uniform(coder, np.array([7, 9]), 8)
    data = coder.to_bytes()
    with pytest.raises(ans.ANSError, match="bytes"):
        ans.ANS.from_bytes(data[:-4], 2)
    with pytest.raises(ans.ANSError, match="at least 24 bytes"):
        ans.ANS.from_bytes(data[:10], 2)
    low = np.frombuffer(data, "<u8", 2).copy()
    low[0] = 5
    with pytest.raises(ans.ANSError, match="below 2\\*\\*32"):
        ans.ANS.from_bytes(low.tobytes() + data[16:], 2)


def test_a_decoder_never_invents_bits():
    """Popping more than was pushed from a decoder's stream raises instead of looping or
    returning made-up symbols."""
    coder = ans.ANS(1)
    for _ in range(10):
        ans.push_uniform(coder, np.array([3]), 8)
    decoder = ans.ANS.from_bytes(coder.to_bytes(), 1)
    with pytest.raises(ans.ANSError, match="ran out of words"):
        for _ in range(1000):
            ans.pop_uniform(decoder, 8)


def test_information_bits():
    assert ans.information_bits(np.array([2 ** 15]), 16)[0] == 1.0
    assert ans.information_bits(np.array([1]), 24)[0] == 24.0
    assert math.isclose(ans.information_bits(np.array([3]), 4)[0], math.log2(16 / 3))
