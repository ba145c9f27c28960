"""Atomic file writes: a reader sees the old file or the new one, never a partial one.

The bytes go to a hidden temporary file beside the target, are flushed to disk, and the file
is renamed over the target (``os.replace`` is atomic on one file system). On any failure the
temporary file is removed; a full disk says so and names the folder.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def atomic_write(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (creating the parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise OSError(
                err.errno,
                f"no space left on the device holding {path.parent} while writing "
                f"{path.name} ({len(data):,} bytes); free some space and rerun (finished "
                "records are untouched)",
            ) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
