"""The mode of the files packflow writes: every output, atomic or not, gets
what ``open()`` would give it (0666 less the umask), never the private 0600 of
a temporary file renamed into place."""

from __future__ import annotations

import os


def umask() -> int:
    """The process's umask. Linux shows it in /proc; elsewhere it is read by
    setting it and putting it back (a moment in which another thread creating
    a file would get 0o022)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_mode() -> int:
    """The mode a new output file gets: 0666 less the umask."""
    return 0o666 & ~umask()
