"""Process measurements shared by the benchmark scripts (Linux /proc)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import resource
import sys
from types import ModuleType


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


def module_under_test(path: str | None, default: str) -> ModuleType:
    """The module at `path` (e.g. an older commit's copy, from `git show`), else `default`
    imported by name: the two contenders of a before/after benchmark."""
    if not path:
        return importlib.import_module(default)
    spec = importlib.util.spec_from_file_location(f"{default.rsplit('.', 1)[1]}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
