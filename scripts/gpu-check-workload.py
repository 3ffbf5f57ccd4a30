#!/usr/bin/env python3
"""The workload of scripts/gpu-check: a matrix-multiply loop of known FLOP count.

Square matrices of --size in bf16 with PyTorch (fp16 with CuPy, which has no bf16), multiplied
repeatedly for about --seconds after a warm-up; each multiply is 2*M*N*K FLOP. Speaks JSON lines
on stdout to `runpermit gate gpu-check`:

  {"event": "start"}                       the timed loop begins (the GPU is synchronized)
  {"event": "end", "flop": F, "elapsed_seconds": S, "precision": "bf16", ...}
  {"event": "unavailable", "reason": R}    no runtime (exit status 3)
"""

import argparse
import json
import sys
import time


def emit(**fields):
    print(json.dumps(fields), flush=True)


def torch_runtime(n):
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("PyTorch sees no CUDA device")
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    c = torch.empty(n, n, device="cuda", dtype=torch.bfloat16)

    def step(k):
        for _ in range(k):
            torch.matmul(a, b, out=c)

    return "torch " + torch.__version__, "bf16", step, torch.cuda.synchronize


def cupy_runtime(n):
    import cupy as cp

    cp.cuda.runtime.getDeviceCount()
    a = cp.random.standard_normal((n, n), dtype=cp.float32).astype(cp.float16)
    b = cp.random.standard_normal((n, n), dtype=cp.float32).astype(cp.float16)
    c = cp.empty((n, n), dtype=cp.float16)

    def step(k):
        for _ in range(k):
            cp.matmul(a, b, out=c)

    return "cupy " + cp.__version__, "fp16", step, cp.cuda.Device().synchronize


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--size", type=int, default=8192)
    args = parser.parse_args()
    n = args.size
    problems = []
    for make in (torch_runtime, cupy_runtime):
        try:
            runtime, precision, step, sync = make(n)
            break
        except Exception as e:  # ImportError, no device, driver errors
            problems.append(f"{make.__name__.split('_')[0]}: {e}")
    else:
        emit(event="unavailable", reason="no GPU workload runtime: " + "; ".join(problems))
        return 3

    step(10)
    sync()
    t0 = time.perf_counter()
    step(10)
    sync()
    per = max((time.perf_counter() - t0) / 10, 1e-6)
    batch = max(1, int(0.25 / per))

    emit(event="start")
    sync()
    t0 = time.perf_counter()
    iterations = 0
    while True:
        step(batch)
        sync()
        iterations += batch
        if time.perf_counter() - t0 >= args.seconds:
            break
    elapsed = time.perf_counter() - t0
    emit(
        event="end",
        runtime=runtime,
        precision=precision,
        m=n,
        n=n,
        k=n,
        iterations=iterations,
        flop=2.0 * n * n * n * iterations,
        elapsed_seconds=elapsed,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
