"""scratchvae vs PyTorch on the CPU: the pytorch/examples VAE recipe, side by side.

Both train 784-400-20 (ReLU, Bernoulli from logits, Adam 1e-3, batch 128) on MNIST
grey values and report epoch time, test loss (negative ELBO, one sample of z, nats
per example) and peak resident memory. Each run lives in its own process (so peak
memory is its own), and the runs take turns epoch by epoch, so that every epoch of
scratchvae is timed under the same machine conditions as the PyTorch epochs beside
it (a shared machine's speed drifts by tens of percent over minutes). PyTorch runs
three ways:

* ``pytorch-example``: as the pytorch/examples script feeds it, a shuffling
  ``DataLoader`` over a data set that turns each uint8 image into a PIL image and then
  a float tensor, exactly what torchvision's ``MNIST`` with ``ToTensor()`` does
  (torchvision itself has no CPU wheel for this torch build);
* ``pytorch-dataloader``: a ``DataLoader`` over an in-memory ``TensorDataset``;
* ``pytorch-indexed``: in-memory tensors indexed by a random permutation, PyTorch's
  fastest form and the fairest comparison of the numerical engines.

    pip install torch==2.13.0      # benchmark-only dependency
    python benchmarks/cpu_vs_pytorch.py --epochs 10
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
from turns import Workers, serve, torch_loss, torch_vae

RUNS = ("pytorch-example", "pytorch-dataloader", "pytorch-indexed", "scratchvae")


class ScratchvaeRun:
    def __init__(self, data_dir, seed: int):
        import scratchvae as sv
        from scratchvae.datasets import load
        from scratchvae.train import TrainConfig

        self.ds = load("mnist", data_dir, progress=False)
        self.config = TrainConfig(seed=seed)
        self.model = sv.VAE(784, (400,), 20, seed=seed)
        self.opt = sv.optim.Adam(self.model.params, lr=1e-3)
        self.x_train = self.model.asarray(self.ds.x_train)

    def epoch(self, epoch: int) -> None:
        from scratchvae.train import train_epoch

        train_epoch(self.model, self.opt, self.x_train, self.config, epoch)

    def test_loss(self) -> float:
        from scratchvae.evaluate import elbo

        return elbo(self.model, self.ds.x_test, batch_size=1000)["loss"]


class _ToTensorImages:
    """uint8 images served one at a time as torchvision's MNIST + ToTensor() serves them."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        import torch
        from PIL import Image

        pic = Image.fromarray(self.images[i], mode="L")
        img = torch.from_numpy(np.array(pic, np.uint8, copy=True)).view(28, 28, 1)
        return img.permute((2, 0, 1)).contiguous().to(dtype=torch.float32).div(255)


class PytorchRun:
    def __init__(self, data_dir, seed: int, feed: str):
        import torch

        from scratchvae.datasets import load

        torch.manual_seed(seed)
        ds = load("mnist", data_dir, progress=False)
        self.torch, self.feed = torch, feed
        self.x_train, self.x_test = torch.from_numpy(ds.x_train), torch.from_numpy(ds.x_test)
        images = np.rint(ds.x_train * 255).astype(np.uint8).reshape(-1, 28, 28)
        self.images = _ToTensorImages(images)

        self.model = torch_vae(torch)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def loss(self, logits, x, mu, logvar):
        return torch_loss(self.torch, logits, x, mu, logvar)

    def batches(self):
        torch, data = self.torch, self.torch.utils.data
        if self.feed == "pytorch-example":
            return (x.view(-1, 784) for x in data.DataLoader(self.images, batch_size=128,
                                                             shuffle=True))
        if self.feed == "pytorch-dataloader":
            return (x for (x,) in data.DataLoader(data.TensorDataset(self.x_train),
                                                  batch_size=128, shuffle=True))
        perm = torch.randperm(self.x_train.shape[0])
        return (self.x_train[perm[i:i + 128]] for i in range(0, self.x_train.shape[0], 128))

    def epoch(self, epoch: int) -> None:
        self.model.train()
        for x in self.batches():
            self.opt.zero_grad()
            logits, mu, logvar = self.model(x)
            loss = self.loss(logits, x, mu, logvar) / x.shape[0]
            loss.backward()
            self.opt.step()

    def test_loss(self) -> float:
        total = 0.0
        with self.torch.no_grad():
            for i in range(0, self.x_test.shape[0], 1000):
                x = self.x_test[i:i + 1000]
                logits, mu, logvar = self.model(x)
                total += float(self.loss(logits, x, mu, logvar))
        return total / self.x_test.shape[0]


class _Served:
    """A run answering ``epoch N`` (its seconds), ``test`` (the test loss) and ``done``
    (peak resident memory)."""

    def __init__(self, run):
        self.run = run

    def handle(self, words) -> dict:
        if words[0] == "epoch":
            t0 = time.perf_counter()
            self.run.epoch(int(words[1]))
            return {"seconds": time.perf_counter() - t0}
        return {"test_loss": self.run.test_loss()}

    def done(self) -> dict:
        return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def worker(name: str, data_dir, seed: int) -> None:
    run = ScratchvaeRun(data_dir, seed) if name == "scratchvae" else \
        PytorchRun(data_dir, seed, name)
    extra = {}
    if name != "scratchvae":
        extra = {"torch": run.torch.__version__, "threads": run.torch.get_num_threads()}
    serve(_Served(run), extra)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--data-dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", choices=RUNS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.data_dir, args.seed)
        return
    args_out = ["--seed", str(args.seed)] + (["--data-dir", args.data_dir] if args.data_dir
                                              else [])
    workers = Workers(__file__, RUNS, args_out)
    info = workers.info
    times = {name: [] for name in RUNS}
    losses = {name: [] for name in RUNS}
    for epoch in range(1, args.epochs + 1):
        for name in RUNS:  # one epoch each, in turn
            times[name].append(workers.ask(name, f"epoch {epoch}")["seconds"])
        for name in RUNS:
            losses[name].append(workers.ask(name, "test")["test_loss"])
    peak = {name: answer["peak_rss_mb"] for name, answer in workers.close().items()}
    med = {name: statistics.median(t) for name, t in times.items()}
    torch_info = info["pytorch-example"]
    print(f"MNIST, 784-400-20 ReLU VAE, Adam 1e-3, batch 128, {args.epochs} epochs, CPU "
          f"(torch {torch_info['torch']}, {torch_info['threads']} threads); "
          f"runs alternate epoch by epoch")
    print(f"{'':19s} {'epoch s (median)':>16s} {'test loss':>10s} {'peak MB':>8s}   "
          f"epoch s (each)")
    for name in RUNS:
        each = " ".join(f"{t:.2f}" for t in times[name])
        print(f"{name:19s} {med[name]:16.2f} {losses[name][-1]:10.2f} {peak[name]:8.0f}   "
              f"{each}")
    for name in RUNS[:3]:
        paired = statistics.median(s / t for s, t in zip(times["scratchvae"], times[name],
                                                          strict=True))
        goal = "; goal <= 0.85" if name == "pytorch-indexed" else ""
        print(f"ratio scratchvae / {name}: {med['scratchvae'] / med[name]:.2f} "
              f"(median of per-epoch ratios {paired:.2f}{goal})")
    print(f"test loss after {args.epochs} epochs: scratchvae {losses['scratchvae'][-1]:.2f}, "
          f"pytorch-example {losses['pytorch-example'][-1]:.2f}  (target <= 106.0)")
    print("test loss per epoch (scratchvae): "
          + " ".join(f"{v:.2f}" for v in losses["scratchvae"]))


if __name__ == "__main__":
    main()
