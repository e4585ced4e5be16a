"""Scheduling: which queued tasks to launch next, by priority then plan order, where they fit."""

from __future__ import annotations

import time

from gpuplan.executor.state import ExecutorBase


class SchedulingMixin(ExecutorBase):
    """Start queued tasks whose GPUs are usable and have room (share and memory)."""

    def _room(self) -> tuple[dict[str, float], dict[str, float]]:
        share: dict[str, float] = {}
        mem: dict[str, float] = {}
        for t in self.tasks.values():
            if t.attempt is not None:
                for g in t.attempt.gpus:
                    share[g] = share.get(g, 0.0) + t.share
                    mem[g] = mem.get(g, 0.0) + t.memory_gb
        return share, mem

    def _schedule(self) -> bool:
        """Start queued tasks, by priority then plan order, whose GPUs are usable and have room.

        Returns True when the time box ran out with tasks still to try (the loop then skips its sleep).
        """
        queued = [t for t in self.tasks.values() if t.state == "queued" and t.placed]
        if not queued:
            return False
        share, mem = self._room()
        # time-boxed, so sampling (fault detection) keeps its pace while a large plan launches
        budget_end = time.monotonic() + max(
            self.settings.poll_interval_s, self.settings.sample_interval_s / 2
        )
        for t in sorted(queued, key=lambda t: (-t.priority, t.ord)):
            if time.monotonic() > budget_end:
                return True
            if any(g in self.excluded or g not in self.device_of for g in t.gpus):
                continue
            fits = all(
                share.get(g, 0.0) + t.share <= 1.0 + 1e-9
                and mem.get(g, 0.0) + t.memory_gb <= self._gpu_memory.get(g, float("inf")) + 1e-9
                for g in t.gpus
            )
            if not fits:
                continue
            self._start(t)
            for g in t.gpus:
                share[g] = share.get(g, 0.0) + t.share
                mem[g] = mem.get(g, 0.0) + t.memory_gb
