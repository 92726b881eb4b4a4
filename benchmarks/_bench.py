"""What the benchmarks share: interleaved timing, the file system they ran on, durations for humans."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["GIT", "Medians", "file_system", "fmt_s", "interleaved"]

#: The git CLI, as the baselines run it (an identity of its own: commits need one)
GIT = ("git", "-c", "user.name=b", "-c", "user.email=b@b")


class Medians:
    """Medians of a subject's and a baseline's rounds, and their ratio (mixed into a report row)."""

    rounds_s: tuple[float, ...]
    baseline_rounds_s: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.rounds_s)

    @property
    def baseline_median_s(self) -> float:
        return statistics.median(self.baseline_rounds_s)

    @property
    def ratio(self) -> float:
        return self.median_s / self.baseline_median_s


def interleaved(
    subjects: dict[str, Callable[[], object]],
    rounds: int,
    before: Callable[[str], object] = lambda _: None,
    after: Callable[[str], object] = lambda _: None,
) -> dict[str, tuple[float, ...]]:
    """Time every subject ``rounds`` times, rotating their order each round, after one warm-up round.

    ``before(name)`` and ``after(name)`` run, untimed, around each run of subject ``name``.
    """
    names = list(subjects)
    for name in names:
        before(name)
        subjects[name]()
        after(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            before(name)
            gc.collect()
            t0 = time.perf_counter()
            subjects[name]()
            times[name].append(time.perf_counter() - t0)
            after(name)
    return {name: tuple(t) for name, t in times.items()}


def file_system(path: Path) -> str:
    """The type and device of the file system holding ``path`` (from /proc/mounts), or "unknown"."""
    best, found = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return found
    real = str(path.resolve())
    for line in mounts:
        dev, point, fstype = line.split()[:3]
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, found = point, f"{fstype} ({dev} on {point})"
    return found


def fmt_s(s: float) -> str:
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"
