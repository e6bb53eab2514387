"""Writing files atomically: the one way every file of scratchvae is written.

The content goes to a temporary file in the target's folder (created exclusively, with
the usual permissions), is flushed to disk, and only then renamed over the target with
``os.replace``, which is atomic: an interrupted or failed write (a crash, Ctrl-C, a full
disk, a check that fails, such as a download's MD5) leaves the previous file as it was
and no temporary file behind.
"""

from __future__ import annotations

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
