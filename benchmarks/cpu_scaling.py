"""How the cost grows: scratchvae vs PyTorch on the CPU, over hidden width and batch size.

The 784-W-20 VAE (ReLU, Bernoulli from logits, Adam 1e-3) trains on the first N MNIST
images for W in {200, 400, 1000, 2000} and batch sizes {32, 128, 512}; PyTorch is fed
from in-memory tensors indexed by a random permutation (its fastest feed). Every cell is
timed in both engines in turn, in separate worker processes, and the whole grid is
repeated; the table gives each engine's median seconds per 60,000 images (one MNIST
epoch, extrapolated from N images) and the median of the paired ratios.

    pip install torch==2.13.0      # benchmark-only dependency
    python benchmarks/cpu_scaling.py --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from turns import Workers, serve, torch_loss, torch_vae

ENGINES = ("pytorch", "scratchvae")
WIDTHS = (200, 400, 1000, 2000)
BATCHES = (32, 128, 512)


class ScratchvaeCells:
    def __init__(self, data_dir):
        from scratchvae.datasets import load

        self.x = load("mnist", data_dir, progress=False).x_train

    def handle(self, words) -> dict:
        import scratchvae as sv
        from scratchvae.train import TrainConfig, train_epoch

        width, batch, n = (int(w) for w in words[1:4])
        model = sv.VAE(784, (width,), 20, seed=0)
        opt = sv.optim.Adam(model.params, lr=1e-3)
        config = TrainConfig(batch_size=batch)
        train_epoch(model, opt, model.asarray(self.x[:4 * batch]), config, 0)  # warm-up
        x = model.asarray(self.x[:n])
        t0 = time.perf_counter()
        train_epoch(model, opt, x, config, 1)
        return {"seconds": time.perf_counter() - t0}

    def done(self) -> dict:
        return {}


class PytorchCells:
    def __init__(self, data_dir):
        import torch

        from scratchvae.datasets import load

        self.torch = torch
        self.x = torch.from_numpy(load("mnist", data_dir, progress=False).x_train)

    def _epoch(self, model, opt, x, batch):
        perm = self.torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], batch):
            xb = x[perm[i:i + batch]]
            opt.zero_grad()
            logits, mu, logvar = model(xb)
            (torch_loss(self.torch, logits, xb, mu, logvar) / xb.shape[0]).backward()
            opt.step()

    def handle(self, words) -> dict:
        width, batch, n = (int(w) for w in words[1:4])
        self.torch.manual_seed(0)
        model = torch_vae(self.torch, hidden=width)
        opt = self.torch.optim.Adam(model.parameters(), lr=1e-3)
        self._epoch(model, opt, self.x[:4 * batch], batch)  # warm-up
        t0 = time.perf_counter()
        self._epoch(model, opt, self.x[:n], batch)
        return {"seconds": time.perf_counter() - t0}

    def done(self) -> dict:
        return {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="repetitions of the whole grid")
    p.add_argument("--n", type=int, default=6400, help="images timed per cell")
    p.add_argument("--data-dir")
    p.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        cells = ScratchvaeCells if args.worker == "scratchvae" else PytorchCells
        run = cells(args.data_dir)
        serve(run, {"torch": run.torch.__version__,
                    "threads": run.torch.get_num_threads()} if args.worker == "pytorch" else {})
        return
    workers = Workers(__file__, ENGINES, ["--data-dir", args.data_dir] if args.data_dir else [])
    seconds = {(e, w, b): [] for e in ENGINES for w in WIDTHS for b in BATCHES}
    for _ in range(args.rounds):
        for w in WIDTHS:
            for b in BATCHES:
                for engine in ENGINES:  # the same cell in both engines, back to back
                    answer = workers.ask(engine, f"cell {w} {b} {args.n}")
                    seconds[(engine, w, b)].append(answer["seconds"] * 60_000 / args.n)
    workers.close()
    info = workers.info["pytorch"]
    print(f"784-W-20 VAE, Adam, float32, CPU (torch {info['torch']}, {info['threads']} "
          f"threads, in-memory indexed feed); seconds per 60,000 images, median of "
          f"{args.rounds} rounds of {args.n} images; ratio = scratchvae / PyTorch "
          f"(median of paired ratios)")
    print("| width | batch | PyTorch s | scratchvae s | ratio |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for w in WIDTHS:
        for b in BATCHES:
            t = seconds[("pytorch", w, b)]
            s = seconds[("scratchvae", w, b)]
            ratio = statistics.median(np.array(s) / np.array(t))
            print(f"| {w} | {b} | {statistics.median(t):.2f} | {statistics.median(s):.2f} | "
                  f"{ratio:.2f} |")


if __name__ == "__main__":
    main()
