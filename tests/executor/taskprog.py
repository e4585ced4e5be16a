"""A small task for executor tests: checks its environment, records its start, sleeps, records its end.

    python taskprog.py OUT_DIR [--sleep S] [--expect UUIDS] [--fail CODE]

Appends one JSON line to OUT_DIR/<task>.starts when it starts and to OUT_DIR/<task>.done when it
finishes, with CUDA_VISIBLE_DEVICES, the attempt, what it found in its checkpoint directory and the
wall time `t` of that moment.
With --expect, exits 3 when CUDA_VISIBLE_DEVICES differs. With --fail, exits CODE after sleeping.
"""

import argparse
import json
import os
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--sleep", type=float, default=0.2)
    ap.add_argument("--expect", default=None)
    ap.add_argument("--fail", type=int, default=0)
    args = ap.parse_args()
    task = os.environ["GPUPLAN_TASK_ID"]
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    ckpt = os.environ.get("GPUPLAN_CHECKPOINT_DIR")
    found = None
    if ckpt:
        path = os.path.join(ckpt, "progress")
        if os.path.exists(path):
            with open(path) as fh:
                found = fh.read()
        with open(path, "w") as fh:
            fh.write(f"attempt {os.environ['GPUPLAN_ATTEMPT']} on {cvd}")
    record = {"task": task, "cvd": cvd, "attempt": os.environ.get("GPUPLAN_ATTEMPT"), "checkpoint": found}
    record["node"] = os.environ.get("GPUPLAN_NODE")
    record["ray_node"] = os.environ.get("GPUPLAN_RAY_NODE_ID")
    record["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
    record["t"] = time.time()
    with open(os.path.join(args.out, f"{task}.starts"), "a") as fh:
        fh.write(json.dumps(record) + "\n")
    if args.expect is not None and cvd != args.expect:
        print(f"CUDA_VISIBLE_DEVICES={cvd!r}, expected {args.expect!r}", file=sys.stderr)
        return 3
    time.sleep(args.sleep)
    if args.fail:
        print(f"failing on purpose with {args.fail}", file=sys.stderr)
        return args.fail
    record["t"] = time.time()
    with open(os.path.join(args.out, f"{task}.done"), "a") as fh:
        fh.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
