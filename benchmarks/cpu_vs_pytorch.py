"""scratchvae vs PyTorch on the CPU: the pytorch/examples VAE recipe, side by side.

Both train 784-400-20 (ReLU, Bernoulli from logits, Adam 1e-3, batch 128) on MNIST
grey values for the same number of epochs, each in its own process (so peak memory
is measured separately), and report epoch time, test loss (negative ELBO, one
sample, nats per example) and peak resident memory. PyTorch runs three ways:

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
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

RUNS = ("pytorch-example", "pytorch-dataloader", "pytorch-indexed", "scratchvae")

def run_scratchvae(epochs: int, data_dir, seed: int) -> dict:
    import scratchvae as sv
    from scratchvae.datasets import load
    from scratchvae.evaluate import elbo
    from scratchvae.train import TrainConfig, train_epoch

    ds = load("mnist", data_dir, progress=False)
    config = TrainConfig(seed=seed)
    model = sv.VAE(784, (400,), 20, seed=seed)
    opt = sv.optim.Adam(model.params, lr=1e-3)
    x_train = model.asarray(ds.x_train)
    times, losses = [], []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        train_epoch(model, opt, x_train, config, epoch, show_progress=False)
        times.append(time.perf_counter() - t0)
        losses.append(elbo(model, ds.x_test, batch_size=1000)["loss"])
    return {"epoch_seconds": times, "test_loss": losses}


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


def run_pytorch(epochs: int, data_dir, seed: int, feed: str) -> dict:
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812 (PyTorch's own idiom)

    from scratchvae.datasets import load

    torch.manual_seed(seed)
    ds = load("mnist", data_dir, progress=False)
    x_train, x_test = torch.from_numpy(ds.x_train), torch.from_numpy(ds.x_test)
    images = _ToTensorImages(np.rint(ds.x_train * 255).astype(np.uint8).reshape(-1, 28, 28))

    class VAE(nn.Module):  # pytorch/examples vae/main.py, with logits + BCE-with-logits
        def __init__(self):
            super().__init__()
            self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), \
                nn.Linear(400, 20)
            self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

        def forward(self, x):
            h = F.relu(self.fc1(x))
            mu, logvar = self.fc21(h), self.fc22(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            return self.fc4(F.relu(self.fc3(z))), mu, logvar

    def loss_fn(logits, x, mu, logvar):
        bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return bce + kld

    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times, losses = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        if feed == "pytorch-example":
            batches = (x.view(-1, 784) for x in torch.utils.data.DataLoader(
                images, batch_size=128, shuffle=True))
        elif feed == "pytorch-dataloader":
            batches = (x for (x,) in torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(x_train), batch_size=128, shuffle=True))
        else:
            perm = torch.randperm(x_train.shape[0])
            batches = (x_train[perm[i:i + 128]] for i in range(0, x_train.shape[0], 128))
        for x in batches:
            opt.zero_grad()
            logits, mu, logvar = model(x)
            loss = loss_fn(logits, x, mu, logvar) / x.shape[0]
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
        total = 0.0
        with torch.no_grad():
            for i in range(0, x_test.shape[0], 1000):
                x = x_test[i:i + 1000]
                logits, mu, logvar = model(x)
                total += float(loss_fn(logits, x, mu, logvar))
        losses.append(total / x_test.shape[0])
    return {"epoch_seconds": times, "test_loss": losses, "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def worker(name: str, epochs: int, data_dir, seed: int) -> None:
    if name == "scratchvae":
        result = run_scratchvae(epochs, data_dir, seed)
    else:
        result = run_pytorch(epochs, data_dir, seed, feed=name)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--data-dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", choices=RUNS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.epochs, args.data_dir, args.seed)
        return
    results = {}
    for name in RUNS:
        cmd = [sys.executable, __file__, "--worker", name, "--epochs", str(args.epochs),
               "--seed", str(args.seed)] + (["--data-dir", args.data_dir] if args.data_dir else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"the {name} run failed:\n{proc.stderr}")
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    ts = results["scratchvae"]
    med = {name: statistics.median(r["epoch_seconds"]) for name, r in results.items()}
    tp = results["pytorch-example"]
    print(f"MNIST, 784-400-20 ReLU VAE, Adam 1e-3, batch 128, {args.epochs} epochs, CPU "
          f"(torch {tp['torch']}, {tp['threads']} threads)")
    print(f"{'':19s} {'epoch s (median)':>16s} {'test loss':>10s} {'peak MB':>8s}   "
          f"epoch s (each)")
    for name, r in results.items():
        each = " ".join(f"{t:.2f}" for t in r["epoch_seconds"])
        print(f"{name:19s} {med[name]:16.2f} {r['test_loss'][-1]:10.2f} "
              f"{r['peak_rss_mb']:8.0f}   {each}")
    for name in RUNS[:3]:
        print(f"ratio scratchvae / {name}: {med['scratchvae'] / med[name]:.2f}  "
              f"(target <= 0.60)")
    print(f"test loss after {args.epochs} epochs: scratchvae {ts['test_loss'][-1]:.2f}, "
          f"pytorch {tp['test_loss'][-1]:.2f}  (target <= 106.0)")
    print("test loss per epoch (scratchvae): "
          + " ".join(f"{v:.2f}" for v in ts["test_loss"]))


if __name__ == "__main__":
    main()
