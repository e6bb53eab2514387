"""BLAS threads on an idle and on a busy machine: 1, all cores, and ``auto``.

Trains the default recipe (784-400-20, ReLU, Bernoulli, Adam 1e-3, batch 128) on MNIST
for one epoch at a time with the BLAS thread count fixed at 1, fixed at the number of
cores, and chosen by ``--threads auto`` (scratchvae.train.choose_threads, as ``scratchvae
train`` does it once per command, timed with its choice). The settings take turns, epoch
by epoch, first on the idle machine, then while a second process keeps one core busy (a
Python busy loop), as another user of a lab machine would. ``auto`` chooses afresh before
each of its epochs; the table gives its epoch time and, separately, what the choice took.

    python benchmarks/threads.py --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="epochs per setting and condition")
    p.add_argument("--n-train", type=int, default=60_000)
    p.add_argument("--data-dir")
    args = p.parse_args()

    import scratchvae as sv
    from scratchvae.threads import available_cores
    from scratchvae.train import TrainConfig, choose_threads, train_epoch

    cores = available_cores()
    settings = [1, cores, "auto"] if cores > 1 else [1, "auto"]
    x_host = sv.datasets.load("mnist", args.data_dir, progress=False).x_train[:args.n_train]
    config = TrainConfig()
    runs = {}
    for s in settings:  # one model per setting, each trained on in its turns
        model = sv.VAE(784, (400,), 20, seed=0)
        runs[s] = (model, sv.optim.Adam(model.params, lr=1e-3), model.asarray(x_host))
    seconds = {(c, s): [] for c in ("idle", "busy") for s in settings}
    chosen = {c: [] for c in ("idle", "busy")}
    trial = {c: [] for c in ("idle", "busy")}
    for condition in ("idle", "busy"):
        busy = None
        if condition == "busy":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        try:
            for _ in range(args.rounds):
                for s in settings:
                    model, opt, x = runs[s]
                    t0 = time.perf_counter()
                    threads = choose_threads(s, config, model, x)
                    if s == "auto":
                        trial[condition].append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    with threads:
                        train_epoch(model, opt, x, config, 1)
                    seconds[(condition, s)].append(time.perf_counter() - t0)
                    if s == "auto":
                        chosen[condition].append(threads.choice)
        finally:
            if busy is not None:
                busy.kill()
    print(f"one epoch of {args.n_train} MNIST images, 784-400-20 VAE, batch 128, {cores} cores; "
          f"median of {args.rounds} epochs per cell, the settings taking turns")
    print("| machine | 1 thread s | " + (f"{cores} threads s | " if cores > 1 else "")
          + "auto s | auto / best fixed | auto chose | choosing took s |")
    print("| --- | ---: | " + ("---: | " if cores > 1 else "") + "---: | ---: | --- | ---: |")
    for condition in ("idle", "busy"):
        med = {s: statistics.median(seconds[(condition, s)]) for s in settings}
        best = min(med[s] for s in settings if s != "auto")
        fixed = " | ".join(f"{med[s]:.2f}" for s in settings if s != "auto")
        label = "idle" if condition == "idle" else "one core busy"
        print(f"| {label} | {fixed} | {med['auto']:.2f} | {med['auto'] / best:.2f} | "
              f"{', '.join(str(c) for c in chosen[condition])} | "
              f"{statistics.median(trial[condition]):.2f} |")


if __name__ == "__main__":
    main()
