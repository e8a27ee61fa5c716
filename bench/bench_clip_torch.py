#!/usr/bin/env python3
"""PyTorch's torch.nn.utils.clip_grad_norm_ on the GPU, timed like recur_bench_clip.

The same sizes (n float32 elements in `spans` uneven gradient tensors), the same two
operations: the norm only (max_norm = inf: reads 4 bytes per element) and a clip that
scales (max_norm = 0: reads twice and writes once, 12 bytes per element). Prints one JSON
line per measurement (also appended to --json FILE). Exits 0 with a "skipped" line when
torch or CUDA is missing.
"""
import argparse
import json
import sys


def span_sizes(n, spans):
    sizes, left = [], n
    for s in range(spans):
        share = left if s + 1 == spans else left * (1 + s % 3) // (2 * (spans - s) + 1)
        sizes.append(min(share, left))
        left -= sizes[-1]
    return sizes


def emit(args, record):
    line = json.dumps(record)
    print(line)
    if args.json:
        with open(args.json, "a") as f:
            f.write(line + "\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=100_000_000)
    p.add_argument("--spans", type=int, default=64)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--json", default="")
    args = p.parse_args()
    try:
        import torch
    except ImportError:
        emit(args, {"bench": "clip", "impl": "torch", "skipped": "torch not importable"})
        return 0
    if not torch.cuda.is_available():
        emit(args, {"bench": "clip", "impl": "torch", "skipped": "no CUDA device"})
        return 0
    params = []
    for size in span_sizes(args.n, args.spans):
        t = torch.nn.Parameter(torch.empty(size, device="cuda"))
        t.grad = torch.rand(size, device="cuda") * 2 - 1
        params.append(t)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for op, max_norm, nbytes in (("global_norm", float("inf"), 4 * args.n),
                                 ("clip_grad_norm", 0.0, 12 * args.n)):
        for _ in range(3):
            torch.nn.utils.clip_grad_norm_(params, max_norm)
        times = []
        for _ in range(args.reps):
            start.record()
            torch.nn.utils.clip_grad_norm_(params, max_norm)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
        ms = sorted(times)[len(times) // 2]
        emit(args, {"bench": "clip", "impl": "torch", "torch": torch.__version__,
                    "device": torch.cuda.get_device_name(0), "op": op, "n": args.n,
                    "spans": args.spans, "ms": round(ms, 4), "bytes": nbytes,
                    "gbs": round(nbytes / (ms * 1e-3) / 1e9, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
