"""Writing files atomically: the one way every file of scratchvae is written.

The content goes to a temporary file in the target's folder (created exclusively, with
the usual permissions), is flushed to disk, and only then renamed over the target with
``os.replace``, which is atomic: an interrupted or failed write (a crash, Ctrl-C, a full
disk, a check that fails, such as a download's MD5) leaves the previous file as it was
and no temporary file behind.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path


def atomic_write(path, write) -> None:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it.

    If ``write`` raises, nothing at ``path`` changes and the exception propagates.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def keep_epochs_until(path, epoch: int) -> None:
    """Drop the lines of a ``metrics.jsonl`` whose ``"epoch"`` is past ``epoch``.

    A run stopped between appending an epoch's line and saving that epoch's checkpoint
    resumes from the previous checkpoint and trains the epoch again; this keeps its line
    from appearing twice. The file is rewritten atomically, and only if a line goes.
    """
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line)["epoch"] <= epoch]
    if len(kept) != len(lines):
        text = "".join(line + "\n" for line in kept)
        atomic_write(path, lambda f: f.write(text.encode()))
