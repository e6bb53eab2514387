"""`scratchvae experiment bits-back` and the bits-back coder of ``scratchvae.bits_back``.

The quick mode runs once (through the command line): the file it writes must decode bit
for bit to the binarized test images, its rate must be the ELBO's plus the stated
overhead, and it must beat the standard coders. The file format must refuse damaged,
truncated and foreign files with a clear error, never return wrong images.
"""

import json
import math
import struct
import zlib

import numpy as np
import pytest

import scratchvae as sv
from scratchvae import bits_back as bb
from scratchvae import checkpoint
from scratchvae.cli import main
from scratchvae.datasets import load
from scratchvae.experiments import Experiment, ExperimentError
from scratchvae.experiments import bits_back as e
from scratchvae.train import TrainConfig, build_model, load_data


@pytest.fixture(scope="module")
def quick(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("bits-back")
    assert main(["experiment", "bits-back", "--quick", "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    return out, json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def trained(quick, data_dir):
    """The quick run's model and its binarized test images (n, 28, 28)."""
    out, _ = quick
    config = TrainConfig.from_json(json.loads((out / "models/vae/config.json").read_text()))
    model = build_model(config, 784)
    checkpoint.restore(out / "models/vae/checkpoint.npz", model)
    x = e.binarized_test_set(load("mnist", str(data_dir)).x_test[:e.QUICK.n_test], 0)
    return model, x.reshape(-1, 28, 28).astype(np.uint8), config


def test_results_json_records_the_run(quick):
    out, results = quick
    assert results["experiment"] == "bits-back" and results["quick"] is True
    numbers = results["numbers"]
    assert {"bits_per_pixel", "bbans_bits_per_image", "neg_elbo_bits_per_image",
            "excess_over_elbo_percent", "discretization_bits_per_image", "overhead_bits",
            "encode_images_per_s", "decode_images_per_s", "standard_bytes",
            "round_trip_bit_for_bit"} <= set(numbers)
    assert numbers["n_images"] == e.QUICK.n_test and numbers["round_trip_bit_for_bit"]
    budget = results["setup"]["training"]
    assert budget["epochs"] == e.QUICK.epochs and budget["train_seconds"] > 0
    assert results["setup"]["config"]["binarize"] == "dynamic"
    assert sorted(results["figures"]) == ["methods.png", "per_image.png"]
    for name in results["figures"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert numbers["encode_images_per_s"] > 0 and numbers["decode_images_per_s"] > 0


def test_the_file_decodes_bit_for_bit_to_the_test_images(quick, trained):
    out, results = quick
    model, images, _ = trained
    assert (out / "test_images.svbb").stat().st_size == results["numbers"]["file_bytes"]
    np.testing.assert_array_equal(bb.load(out / "test_images.svbb", model), images)


def test_the_test_images_are_the_training_protocols_draw(trained):
    """The images coded are the binarized test set :func:`load_data` gives the model."""
    _, images, config = trained
    _, _, _, x_test, _ = load_data(config)
    np.testing.assert_array_equal(images.reshape(len(images), -1), x_test)


def test_the_rate_is_the_elbo_plus_discretization_and_overhead(quick):
    _, results = quick
    n = results["numbers"]
    assert n["bbans_bits_per_image"] * n["n_images"] == 8 * n["file_bytes"]
    # the file = the coder's per-image information content + the stated overhead
    assert n["coded_bits_per_image"] + n["overhead_bits"] / n["n_images"] == \
        pytest.approx(n["bbans_bits_per_image"], abs=0.01)
    parts = n["parts_bits_per_image"]
    assert parts["x_given_z"] + parts["z_prior"] - parts["bits_back"] == \
        pytest.approx(n["coded_bits_per_image"], abs=0.01)
    assert parts["z_prior"] == 10 * 16         # k = 10 bits for each of 16 latents
    # the coder's rate (overhead aside) is the ELBO's within 1 %; the bits got back are
    # most of what pushing z costs
    assert abs(n["discretization_bits_per_image"]) < 0.01 * n["neg_elbo_bits_per_image"]
    assert parts["bits_back"] > 0.7 * parts["z_prior"]
    # the library's own (float32, one-sample) ELBO agrees with the coder's in nats
    assert n["neg_elbo_bits_per_image"] * math.log(2) == \
        pytest.approx(n["neg_elbo_nats_library"], rel=0.02)


def test_bits_back_beats_the_standard_coders(quick):
    _, results = quick
    bpp = results["numbers"]["bits_per_pixel"]
    ours = bpp["BB-ANS (ours)"]
    assert bpp["-ELBO (ideal rate)"] < ours
    for name in e.LABELS.values():
        assert ours < bpp[name], name
    # the headers of 200 separate files
    assert bpp["PNG, file per image"] > bpp["PNG, one grid"]
    sizes = results["numbers"]["standard_bytes"]
    assert bpp["lzma"] == pytest.approx(8 * sizes["lzma"] / (784 * e.QUICK.n_test), abs=1e-5)


# ---- the coder on a small model (no data needed) ---------------------------------------------

@pytest.fixture(scope="module")
def small():
    model = sv.VAE(64, (32,), 4, seed=3)
    rng = np.random.default_rng(0)
    images = (rng.random((30, 8, 8)) < 0.3).astype(np.uint8)
    return model, images


@pytest.mark.parametrize("coding", [bb.Coding(chains=1, lanes=1), bb.Coding(chains=4, lanes=3),
                                    bb.Coding(latent_bits=4, precision=12, chains=7, lanes=16)])
def test_round_trip_for_several_layouts(small, coding):
    model, images = small
    data = bb.compress(model, images, coding)
    np.testing.assert_array_equal(bb.decompress(model, data), images)


def test_one_image_and_the_clean_bits(small):
    model, images = small
    enc = bb.encode(model, images[:1], bb.Coding(chains=1, lanes=2))
    np.testing.assert_array_equal(bb.decompress(model, enc.data), images[:1])
    assert enc.clean_bits > 0          # the first pop had nothing to pop but clean bits


def test_chaining_amortizes_the_overhead(small):
    """The overhead is paid per stream, not per image: coding 30 images in one chain costs
    about as much overhead as coding one."""
    model, images = small
    coding = bb.Coding(chains=1, lanes=4)
    one, many = bb.encode(model, images[:1], coding), bb.encode(model, images, coding)
    assert many.overhead_bits < 3 * one.overhead_bits
    assert many.overhead_bits / 30 < one.overhead_bits / 5


def test_save_and_load_go_through_a_file(small, tmp_path):
    model, images = small
    bb.save(tmp_path / "x.svbb", bb.compress(model, images))
    np.testing.assert_array_equal(bb.load(tmp_path / "x.svbb", model), images)
    assert [p.name for p in tmp_path.iterdir()] == ["x.svbb"]


def _refix_crc(data: bytes) -> bytes:
    """``data`` with its two CRC32 fields recomputed (to reach the checks behind them)."""
    h = bb._HEADER.size
    header, body = data[:h], data[h + 4:-4]
    return header + struct.pack("<I", zlib.crc32(header)) + body + \
        struct.pack("<I", zlib.crc32(body))


def test_damaged_truncated_and_foreign_files_are_refused(small):
    model, images = small
    data = bb.compress(model, images, bb.Coding(chains=2, lanes=4))
    h = bb._HEADER.size + 4
    cases = {
        "not a bits-back file": b"PK\x03\x04" + data[4:],
        "truncated: the header": data[:20],
        "damaged header": data[:8] + bytes([data[8] ^ 1]) + data[9:],
        "truncated streams": data[:-7],
        "damaged streams": data[:h + 30] + bytes([data[h + 30] ^ 4]) + data[h + 31:],
    }
    for word, bad in cases.items():
        with pytest.raises(bb.BitsBackError, match=word):
            bb.decompress(model, bad)
    other = sv.VAE(64, (32,), 4, seed=4)
    with pytest.raises(bb.BitsBackError, match="another model"):
        bb.decompress(other, data)
    with pytest.raises(bb.BitsBackError, match="bytes"):
        bb.decompress(model, "not bytes")


def test_damage_behind_a_valid_crc_never_gives_wrong_images(small):
    """Every word of the streams flipped in turn, with the CRCs made to match: the decoder
    must raise each time (checksum, exhausted stream or a stream not back in its initial
    state), never return images."""
    model, images = small
    data = bb.compress(model, images[:6], bb.Coding(chains=1, lanes=2))
    start = bb._HEADER.size + 4 + 2 * 12       # the streams' words
    for pos in range(start, len(data) - 4, 4):
        bad = _refix_crc(data[:pos] + bytes([data[pos] ^ 0x10]) + data[pos + 1:])
        with pytest.raises(bb.BitsBackError):
            bb.decompress(model, bad)
    wrong_digest = bytearray(data)
    wrong_digest[bb._HEADER.size - 1] ^= 1     # the last byte of the SHA-256
    with pytest.raises(bb.BitsBackError, match="SHA-256"):
        bb.decompress(model, _refix_crc(bytes(wrong_digest)))


def test_bad_images_and_models_are_named(small):
    model, images = small
    with pytest.raises(bb.BitsBackError, match="binary"):
        bb.compress(model, images * 0.5)
    with pytest.raises(bb.BitsBackError, match="images must have shape"):
        bb.compress(model, images.reshape(30, 64))
    with pytest.raises(bb.BitsBackError, match="likelihood='bernoulli'"):
        bb.compress(sv.VAE(64, (32,), 4, likelihood="gaussian"), images)
    with pytest.raises(bb.BitsBackError, match="precision"):
        bb.compress(model, images, bb.Coding(latent_bits=12, precision=10))


def test_buckets_have_equal_prior_mass():
    from scipy.special import ndtr

    edges, centres = bb.bucket_edges(6), bb.bucket_centres(6)
    np.testing.assert_allclose(np.diff(ndtr(edges)), 1 / 64, atol=1e-12)
    assert np.all((edges[:-1] < centres) & (centres < edges[1:]))
    table = bb.posterior_table(np.array([[0.3, -2.0]]), np.array([[0.1, 2.0]]), edges, 16)
    freqs = np.diff(table, axis=2)
    assert freqs.min() >= 1 and np.all(table[..., -1] == 2 ** 16)
    # the narrow posterior puts almost all its mass in the buckets within 3 sigma of 0.3
    near = (centres > 0.0) & (centres < 0.6)
    assert freqs[0, 0, near].sum() > 0.99 * 2 ** 16


# ---- options -------------------------------------------------------------------------------


def test_from_a_gaussian_run_is_refused(quick, tmp_path):
    out, _ = quick
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes((out / "models/vae/checkpoint.npz").read_bytes())
    config = json.loads((out / "models/vae/config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "likelihood": "gaussian"}))
    with pytest.raises(ExperimentError, match="Bernoulli VAE"):
        e.run(Experiment("bits-back", tmp_path / "o", quick=True, from_run=run))
