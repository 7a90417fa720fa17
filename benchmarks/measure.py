"""Process measurements shared by the benchmark scripts (Linux /proc)."""

from __future__ import annotations

import os
import resource


def pin_to_cpu(cpu: int) -> None:
    """Run this process on one core (the first allowed one if `cpu` is not allowed)."""
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu if cpu in allowed else allowed[0]})


def rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM of its address space.

    Not `ru_maxrss`: Linux carries the parent's high-water mark over `execve` into the
    child's `ru_maxrss` (the spawning parent's memory would count as the contender's).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
