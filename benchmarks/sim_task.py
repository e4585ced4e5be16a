"""A task for simulated fleets whose GPUs are truly slower or faster than declared.

    python -I benchmarks/sim_task.py --work-h W --sim sim.json --truth truth.json --hour-s S [--seed N]

It finds its GPU type from CUDA_VISIBLE_DEVICES (the UUIDs the executor sets) and the simulated fleet
file, and sleeps

    W / true_speed(type) x exp(noise x z) x hour_s   seconds,   z ~ N(0, 1) drawn from (seed, task id)

where truth.json is {"speeds": {type: true speed}, "noise": σ}: the hours the task really takes on
that type, time-compressed by the executor's `--hour-seconds`. A gang runs at its slowest GPU's
speed. The noise belongs to the task (the same on every type and attempt). Standard library only, so
it starts fast.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time


def true_hours(work_h: float, model: str, truth: dict, task: str, seed: int) -> float:
    """The hours the task really takes on a GPU of `model`."""
    z = random.Random(f"{seed}:{task}").gauss(0.0, 1.0)
    return work_h / float(truth["speeds"][model]) * math.exp(float(truth.get("noise", 0.0)) * z)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work-h", type=float, required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--hour-s", type=float, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with open(args.sim, encoding="utf-8") as fh:
        by_uuid = {g["uuid"]: g["model"] for g in json.load(fh)["gpus"]}
    with open(args.truth, encoding="utf-8") as fh:
        truth = json.load(fh)
    models = [by_uuid[u] for u in os.environ["CUDA_VISIBLE_DEVICES"].split(",")]
    slowest = min(models, key=lambda m: float(truth["speeds"][m]))
    task = os.environ.get("GPUPLAN_TASK_ID", "")
    time.sleep(true_hours(args.work_h, slowest, truth, task, args.seed) * args.hour_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
