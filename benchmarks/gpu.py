"""The same training code on CPU (NumPy) and GPU (CuPy): epoch time and test loss.

    pip install "scratchvae[gpu]"
    python benchmarks/gpu.py --epochs 3

Without CuPy or a GPU it says so and times the NumPy backend alone.
"""

from __future__ import annotations

import argparse
import time

import scratchvae as sv
from scratchvae.datasets import load
from scratchvae.evaluate import elbo
from scratchvae.train import TrainConfig, train_epoch


def time_backend(backend: str, ds, epochs: int, batch_size: int, seed: int) -> dict:
    model = sv.VAE(784, (400,), 20, backend=backend, seed=seed)
    opt = sv.optim.Adam(model.params, lr=1e-3)
    x_train = model.asarray(ds.x_train)  # the data crosses to the device once
    config = TrainConfig(batch_size=batch_size, seed=seed)
    times = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        train_epoch(model, opt, x_train, config, epoch, show_progress=False)
        if backend == "cupy":
            import cupy

            cupy.cuda.Device().synchronize()
        times.append(time.perf_counter() - t0)
    return {"epoch_seconds": times, "test_loss": elbo(model, ds.x_test)["loss"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--data-dir")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    ds = load("mnist", args.data_dir, progress=False)
    backends = ["numpy"]
    try:
        sv.backend.get_namespace("cupy")
        backends.append("cupy")
    except (ImportError, RuntimeError) as err:
        print(f"no GPU run: {err}")
    print(f"MNIST 784-400-20 VAE, float32, batch {args.batch_size}, {args.epochs} epochs")
    print(f"{'backend':8s} {'first epoch s':>14s} {'later epochs s (min)':>21s} {'test loss':>10s}")
    for backend in backends:
        r = time_backend(backend, ds, args.epochs, args.batch_size, args.seed)
        later = min(r["epoch_seconds"][1:]) if len(r["epoch_seconds"]) > 1 else float("nan")
        print(f"{backend:8s} {r['epoch_seconds'][0]:14.2f} {later:21.2f} {r['test_loss']:10.2f}")


if __name__ == "__main__":
    main()
