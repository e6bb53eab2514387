"""Importance-weighted log p(x): scratchvae vs PyTorch on the same weights, on the CPU.

A 784-400-20 ReLU/Bernoulli VAE is trained for a few epochs with scratchvae (or read from
``--run RUN_DIR``); its weights are copied into the PyTorch twin of the same network
(``turns.torch_vae``). Both then compute the estimator of Burda et al. (2016) the same
way: 100 test images per batch, the K importance samples in chunks of 100, a running
log-sum-exp. Each engine runs in its own worker process, and the runs take turns.

    pip install torch==2.13.0      # benchmark-only dependency
    python benchmarks/eval_vs_pytorch.py --rounds 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
from turns import Workers, serve, torch_vae

ENGINES = ("pytorch", "scratchvae")


def _model(run_dir, data_dir):
    """The trained scratchvae model: from ``run_dir``, or trained here for 3 epochs."""
    import scratchvae as sv
    from scratchvae import checkpoint
    from scratchvae.train import TrainConfig, build_model, train

    if run_dir is None:
        run_dir = "/tmp/scratchvae-eval-benchmark"
        train(TrainConfig(epochs=3, data_dir=data_dir, threads=1), run_dir, quiet=True)
    model = build_model(TrainConfig(), 784)
    checkpoint.restore(f"{run_dir}/checkpoint.npz", model)
    return sv, model


class ScratchvaeEval:
    def __init__(self, run_dir, data_dir):
        self.sv, self.model = _model(run_dir, data_dir)
        self.x = self.sv.datasets.load("mnist", data_dir, progress=False).x_test

    def handle(self, words) -> dict:
        from scratchvae.evaluate import log_likelihood

        k, n = int(words[1]), int(words[2])
        self.model.reseed(0)
        t0 = time.perf_counter()
        ll, _ = log_likelihood(self.model, self.x[:n], k=k, threads="auto")
        return {"seconds": time.perf_counter() - t0, "ll": ll}

    def done(self) -> dict:
        return {}


class PytorchEval:
    def __init__(self, run_dir, data_dir):
        import torch

        sv, model = _model(run_dir, data_dir)
        self.torch = torch
        self.x = torch.from_numpy(sv.datasets.load("mnist", data_dir, progress=False).x_test)
        net = torch_vae(torch)
        p = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in model.params.items()}
        with torch.no_grad():  # scratchvae's W is (d_in, d_out); torch's weight is its transpose
            for mine, theirs in (("enc.0", net.fc1), ("enc.mu", net.fc21),
                                 ("enc.logvar", net.fc22), ("dec.0", net.fc3),
                                 ("dec.out", net.fc4)):
                theirs.weight.copy_(p[f"{mine}.W"].T)
                theirs.bias.copy_(p[f"{mine}.b"])
        self.net = net

    def _batch_ll(self, x, k, k_batch=100):
        torch, net = self.torch, self.net
        h = torch.relu(net.fc1(x))
        mu, logvar = net.fc21(h), net.fc22(h)
        std = torch.exp(0.5 * logvar)
        log_sum = torch.full((x.shape[0],), -math.inf)
        for start in range(0, k, k_batch):
            L = min(k_batch, k - start)
            eps = torch.randn(L, *mu.shape)
            z = mu + std * eps                                           # (L, n, d)
            logits = net.fc4(torch.relu(net.fc3(z)))                     # (L, n, D)
            log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, x.expand_as(logits), reduction="none").sum(-1)
            log_pz = -0.5 * (z * z + math.log(2 * math.pi)).sum(-1)
            log_qz = -0.5 * (eps * eps + logvar + math.log(2 * math.pi)).sum(-1)
            log_w = log_px + log_pz - log_qz
            log_sum = torch.logaddexp(log_sum, torch.logsumexp(log_w, dim=0))
        return log_sum - math.log(k)

    def handle(self, words) -> dict:
        k, n = int(words[1]), int(words[2])
        self.torch.manual_seed(0)
        t0 = time.perf_counter()
        with self.torch.no_grad():
            ll = self.torch.cat([self._batch_ll(self.x[i:i + 100], k)
                                 for i in range(0, n, 100)])
        return {"seconds": time.perf_counter() - t0, "ll": float(ll.double().mean())}

    def done(self) -> dict:
        return {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--run", help="a run directory of the default recipe (else: 3 epochs here)")
    p.add_argument("--data-dir")
    p.add_argument("--worker", choices=ENGINES, help="(internal)")
    args = p.parse_args()
    if args.worker:
        cls = ScratchvaeEval if args.worker == "scratchvae" else PytorchEval
        run = cls(args.run, args.data_dir)
        serve(run, {"torch": run.torch.__version__, "threads": run.torch.get_num_threads()}
              if args.worker == "pytorch" else {})
        return
    if args.run is None:  # train once here, so that both workers read the same weights
        _model(None, args.data_dir)
        args.run = "/tmp/scratchvae-eval-benchmark"
    workers = Workers(__file__, ENGINES, ["--run", args.run] + (
        ["--data-dir", args.data_dir] if args.data_dir else []))
    cases = ((500, 1000), (5000, 100))
    results = {(e, c): [] for e in ENGINES for c in cases}
    for _ in range(args.rounds):
        for case in cases:
            for engine in ENGINES:
                results[(engine, case)].append(workers.ask(engine, f"ll {case[0]} {case[1]}"))
    workers.close()
    info = workers.info["pytorch"]
    print(f"importance-weighted log p(x), 784-400-20 VAE, the same weights; torch "
          f"{info['torch']} ({info['threads']} threads); median of {args.rounds} rounds, "
          f"the engines taking turns")
    print("| K | test images | PyTorch s | scratchvae s | ratio | log p(x) PyTorch | scratchvae |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for case in cases:
        t = [r["seconds"] for r in results[("pytorch", case)]]
        s = [r["seconds"] for r in results[("scratchvae", case)]]
        ratio = statistics.median(a / b for a, b in zip(s, t, strict=True))
        print(f"| {case[0]} | {case[1]} | {statistics.median(t):.2f} | {statistics.median(s):.2f} "
              f"| {ratio:.2f} | {results[('pytorch', case)][0]['ll']:.2f} | "
              f"{results[('scratchvae', case)][0]['ll']:.2f} |")


if __name__ == "__main__":
    main()
