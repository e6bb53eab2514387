"""What the benchmarks share: the PyTorch twin of the model, and runs that take turns.

A shared machine's speed drifts by tens of percent over minutes, so the benchmarks never
time one engine for a while and then the other. Each engine lives in its own worker
process (its own threads, memory and, on a GPU, CUDA context) that waits for commands on
stdin; the parent sends the workers the same command in turn and compares what they
measured side by side.
"""

from __future__ import annotations

import json
import subprocess
import sys


def torch_vae(torch, hidden: int = 400, latent: int = 20, input_dim: int = 784):
    """The pytorch/examples VAE (784-400-20, ReLU), with logits for the Bernoulli loss."""
    nn = torch.nn

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc21 = nn.Linear(input_dim, hidden), nn.Linear(hidden, latent)
            self.fc22, self.fc3 = nn.Linear(hidden, latent), nn.Linear(latent, hidden)
            self.fc4 = nn.Linear(hidden, input_dim)

        def forward(self, x):
            h = torch.relu(self.fc1(x))
            mu, logvar = self.fc21(h), self.fc22(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            return self.fc4(torch.relu(self.fc3(z))), mu, logvar

    return VAE()


def torch_loss(torch, logits, x, mu, logvar):
    """Negative ELBO summed over the batch: Bernoulli from logits plus the analytic KL."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def serve(run, ready: dict) -> None:
    """Worker side: print ``ready`` as a JSON line, then answer each command line on
    stdin with one JSON line: ``run.handle(words)``'s dict; ``done`` ends the worker."""
    print(json.dumps({"ready": True, **ready}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[0] == "done":
            print(json.dumps(run.done()), flush=True)
            return
        print(json.dumps(run.handle(words)), flush=True)


class Workers:
    """Parent side: one worker process per name, started as ``[python, script, *args,
    "--worker", name]``; :meth:`ask` sends a command to one and returns its answer."""

    def __init__(self, script: str, names, args=()):
        self.procs, self.info = {}, {}
        for name in names:
            cmd = [sys.executable, script, *args, "--worker", name]
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            self.procs[name] = proc
            self.info[name] = json.loads(proc.stdout.readline() or "{}")
            if not self.info[name].get("ready"):
                sys.exit(f"the {name} worker failed to start:\n{proc.stderr.read()}")

    def ask(self, name: str, command: str) -> dict:
        proc = self.procs[name]
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            sys.exit(f"the {name} worker stopped:\n{proc.stderr.read()}")
        return json.loads(line)

    def close(self) -> dict:
        """Send ``done`` to every worker; their last answers by name."""
        return {name: self.ask(name, "done") for name in self.procs}
