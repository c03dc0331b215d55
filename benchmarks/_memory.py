"""Peak resident memory of a block of code, shared by the benchmarks (Linux /proc)."""

from __future__ import annotations

import os
import threading


def rss_mb() -> float:
    """This process's resident set size now, in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Peak resident set size (MiB) while the block runs, sampled every 5 ms.

    ``start``, ``peak`` and ``extra_mb`` (= peak - start) are set on exit.
    """

    def __enter__(self):
        self.start = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())
        self.extra_mb = self.peak - self.start
