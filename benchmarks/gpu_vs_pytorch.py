"""scratchvae on CuPy vs PyTorch on CUDA: the default recipe on one GPU, side by side.

Both train 784-400-20 (ReLU, Bernoulli from logits, Adam 1e-3) on MNIST grey values with
the training and test sets in GPU memory (PyTorch indexes in-memory CUDA tensors with a
permutation drawn on the GPU, its fastest feed), at batch sizes 128 and 1024. Each
engine runs in its own process with its own CUDA context; the runs take turns epoch by
epoch. Reported: the median epoch time, the paired ratio, the test loss (negative ELBO,
one sample of z, nats per example) and the peak GPU memory held by each library's
memory pool (CuPy's pool total, PyTorch's ``max_memory_reserved``). The clock stops
after the device has finished: scratchvae's epoch ends by reading its per-step losses
back; PyTorch's with ``torch.cuda.synchronize()``.

    pip install "scratchvae[gpu]" torch      # a CUDA build of torch
    python benchmarks/gpu_vs_pytorch.py --epochs 5

``--cpu`` runs the same script on NumPy and PyTorch's CPU build, to try it on a machine
without a GPU (the numbers then say nothing about GPUs).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

from turns import Workers, serve, torch_loss, torch_vae

ENGINES = ("pytorch", "scratchvae")
BATCHES = (128, 1024)


class ScratchvaeGPU:
    def __init__(self, data_dir, cpu: bool, n_train):
        from scratchvae.backend import get_namespace
        from scratchvae.datasets import load

        self.backend = "numpy" if cpu else "cupy"
        self.xp = get_namespace(self.backend)
        self.ds = load("mnist", data_dir, progress=False)
        self.n_train = n_train
        self.models = {}

    def _run(self, batch: int):
        import scratchvae as sv
        from scratchvae.train import TrainConfig

        if batch not in self.models:
            model = sv.VAE(784, (400,), 20, backend=self.backend, seed=0)
            self.models[batch] = (model, sv.optim.Adam(model.params, lr=1e-3),
                                  TrainConfig(batch_size=batch),
                                  model.asarray(self.ds.x_train[:self.n_train]),
                                  model.asarray(self.ds.x_test))
        return self.models[batch]

    def handle(self, words) -> dict:
        from scratchvae.evaluate import elbo
        from scratchvae.train import train_epoch

        model, opt, config, x_train, x_test = self._run(int(words[1]))
        if words[0] == "epoch":
            t0 = time.perf_counter()
            train_epoch(model, opt, x_train, config, 1)  # returns once the GPU is done
            return {"seconds": time.perf_counter() - t0, "peak_mb": self._peak_mb()}
        return {"test_loss": elbo(model, x_test, batch_size=1000)["loss"]}

    def _peak_mb(self) -> float:
        if self.backend == "numpy":
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        import cupy

        return cupy.get_default_memory_pool().total_bytes() / 2**20

    def done(self) -> dict:
        return {}


class PytorchGPU:
    def __init__(self, data_dir, cpu: bool, n_train):
        import torch

        from scratchvae.datasets import load

        self.torch = torch
        self.device = torch.device("cpu" if cpu else "cuda")
        ds = load("mnist", data_dir, progress=False)
        self.x_train = torch.from_numpy(ds.x_train[:n_train]).to(self.device)
        self.x_test = torch.from_numpy(ds.x_test).to(self.device)
        self.models = {}

    def _sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def handle(self, words) -> dict:
        torch, batch = self.torch, int(words[1])
        if batch not in self.models:
            torch.manual_seed(0)
            model = torch_vae(torch).to(self.device)
            self.models[batch] = (model, torch.optim.Adam(model.parameters(), lr=1e-3))
        model, opt = self.models[batch]
        if words[0] == "epoch":
            t0 = time.perf_counter()
            n = self.x_train.shape[0]
            perm = torch.randperm(n, device=self.device)
            for i in range(0, n, batch):
                x = self.x_train[perm[i:i + batch]]
                opt.zero_grad()
                logits, mu, logvar = model(x)
                (torch_loss(torch, logits, x, mu, logvar) / x.shape[0]).backward()
                opt.step()
            self._sync()
            return {"seconds": time.perf_counter() - t0, "peak_mb": self._peak_mb()}
        total = 0.0
        with torch.no_grad():
            for i in range(0, self.x_test.shape[0], 1000):
                x = self.x_test[i:i + 1000]
                logits, mu, logvar = model(x)
                total += float(torch_loss(torch, logits, x, mu, logvar))
        return {"test_loss": total / self.x_test.shape[0]}

    def _peak_mb(self) -> float:
        if self.device.type == "cpu":
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return self.torch.cuda.max_memory_reserved() / 2**20

    def done(self) -> dict:
        return {}


def _ready(engine: str, run) -> dict:
    if engine == "scratchvae":
        if run.backend == "numpy":
            return {"device": "CPU (NumPy)"}
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        return {"device": props["name"].decode(), "cupy": cupy.__version__}
    torch = run.torch
    name = torch.cuda.get_device_name(0) if run.device.type == "cuda" else "CPU"
    return {"device": name, "torch": torch.__version__}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--n-train", type=int, default=60_000)
    p.add_argument("--data-dir")
    p.add_argument("--cpu", action="store_true", help="NumPy and PyTorch on the CPU: a dry "
                   "run of this script on a machine without a GPU")
    p.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        cls = ScratchvaeGPU if args.worker == "scratchvae" else PytorchGPU
        run = cls(args.data_dir, args.cpu, args.n_train)
        serve(run, _ready(args.worker, run))
        return
    passed = ["--n-train", str(args.n_train), *(["--cpu"] if args.cpu else []),
              *(["--data-dir", args.data_dir] if args.data_dir else [])]
    workers = Workers(__file__, ENGINES, passed)
    results = {}
    for batch in BATCHES:
        times = {e: [] for e in ENGINES}
        peak = dict.fromkeys(ENGINES, 0.0)
        for _ in range(args.epochs):
            for engine in ENGINES:  # one epoch each, in turn
                answer = workers.ask(engine, f"epoch {batch}")
                times[engine].append(answer["seconds"])
                peak[engine] = max(peak[engine], answer["peak_mb"])
        loss = {e: workers.ask(e, f"test {batch}")["test_loss"] for e in ENGINES}
        results[batch] = times, peak, loss
    workers.close()
    info = workers.info
    print(f"MNIST 784-400-20 VAE, Adam 1e-3, float32, {args.n_train} images per epoch, "
          f"{args.epochs} epochs per batch size; scratchvae on {info['scratchvae']['device']} "
          f"(CuPy {info['scratchvae'].get('cupy', '-')}), PyTorch {info['pytorch']['torch']} "
          f"on {info['pytorch']['device']}; the runs alternate epoch by epoch")
    print("| batch | engine | epoch s (median) | epochs s | test loss | peak MB |")
    print("| ---: | --- | ---: | --- | ---: | ---: |")
    for batch, (times, peak, loss) in results.items():
        for e in ENGINES:
            each = " ".join(f"{t:.2f}" for t in times[e])
            print(f"| {batch} | {e} | {statistics.median(times[e]):.3f} | {each} | "
                  f"{loss[e]:.2f} | {peak[e]:.0f} |")
    for batch, (times, _, _) in results.items():
        # the first epoch compiles kernels and warms up cuBLAS in both: left out
        pairs = [s / t for s, t in zip(times["scratchvae"][1:], times["pytorch"][1:],
                                       strict=True)] or [times["scratchvae"][0] /
                                                         times["pytorch"][0]]
        print(f"batch {batch}: scratchvae / PyTorch epoch time = {statistics.median(pairs):.2f} "
              f"(median of paired ratios after the first epoch; goal <= 1.0 at batch 128)")


if __name__ == "__main__":
    main()
