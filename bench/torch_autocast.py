#!/usr/bin/env python3
"""PyTorch's nn.LSTM / nn.GRU training step on the GPU at each precision recur_bench times.

    python3 bench/torch_autocast.py [--cell lstm] [--T 50] [--B 64] [--H 512] [--I H]
                                    [--layers 1] [--reps 20] [--warmup 3]

One training step is forward + backward of sum(y * dy) with fixed random x and dy, as
recur_bench's. Precisions: fp32 (cuDNN TF32 off), tf32 (torch.backends.cudnn.allow_tf32
and cuda.matmul.allow_tf32), torch.autocast(device_type="cuda") with bfloat16 and float16
(the weights stay float32), and the module cast to bfloat16 ("torch_bf16_cast": weights, x
and dy in bfloat16; cuDNN has BF16 RNNs from 9.13). PyTorch's autocast runs cuDNN's RNN in
float16 whatever the autocast dtype, so each row says the dtype its RNN's output had
(rnn_dtype): compare recur's BF16 with the rows that really ran in bfloat16. Times are
CUDA-event medians over --reps steps after --warmup untimed ones; prints one CSV row per
precision. Without torch, or without CUDA, prints one line saying so and exits 0.
"""
import argparse
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    ap.add_argument("--T", type=int, default=50)
    ap.add_argument("--B", type=int, default=64)
    ap.add_argument("--H", type=int, default=512)
    ap.add_argument("--I", type=int, default=0, help="input size (default: H)")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("torch_autocast: skipped, PyTorch is not installed")
        return 0
    if not torch.cuda.is_available():
        print(f"torch_autocast: skipped, torch {torch.__version__} sees no CUDA device")
        return 0

    I = args.I or args.H
    torch.manual_seed(0)
    cls = torch.nn.LSTM if args.cell == "lstm" else torch.nn.GRU
    rnn = cls(I, args.H, args.layers).cuda()
    x = torch.randn(args.T, args.B, I, device="cuda", requires_grad=True)
    dy = torch.randn(args.T, args.B, args.H, device="cuda")
    # GEMM FLOPs as recur_bench counts them: training = 3 * forward.
    gates = 4 if args.cell == "lstm" else 3
    flops = sum(3 * 2 * gates * args.H * ((I if l == 0 else args.H) + args.H) * args.T * args.B
                for l in range(args.layers))

    def step(dtype):
        with torch.autocast(device_type="cuda", dtype=dtype, enabled=dtype is not None):
            y, _ = rnn(x)
        (y.float() * dy).sum().backward()
        return y.dtype

    cast = {}  # the bfloat16 module and input, made on first use

    def step_cast(_):
        if not cast:
            cast["rnn"] = cls(I, args.H, args.layers).cuda().to(torch.bfloat16)
            cast["x"] = x.detach().to(torch.bfloat16).requires_grad_()
        y, _ = cast["rnn"](cast["x"])
        (y.float() * dy).sum().backward()
        return y.dtype

    print(f"# torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
          f"{torch.cuda.get_device_name(0)}")
    print("impl,cell,T,B,I,H,layers,median_ms,p10_ms,p90_ms,gflops,rnn_dtype")
    for name, tf32, dtype, run in (("torch", False, None, step), ("torch_tf32", True, None, step),
                                   ("torch_bf16", False, torch.bfloat16, step),
                                   ("torch_fp16", False, torch.float16, step),
                                   ("torch_bf16_cast", False, torch.bfloat16, step_cast)):
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            for _ in range(args.warmup):
                ran = run(dtype)
            ms = []
            for _ in range(args.reps):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                ran = run(dtype)
                end.record()
                end.synchronize()
                ms.append(start.elapsed_time(end))
        except RuntimeError as e:  # a precision this GPU or cuDNN refuses
            print(f"{name},{args.cell},{args.T},{args.B},{I},{args.H},{args.layers},error: "
                  + str(e).splitlines()[0].replace(",", ";"))
            continue
        ms.sort()
        pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
        print(f"{name},{args.cell},{args.T},{args.B},{I},{args.H},{args.layers},"
              f"{pick(0.5):.3f},{pick(0.1):.3f},{pick(0.9):.3f},{flops / (pick(0.5) * 1e6):.1f},"
              f"{str(ran).replace('torch.', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
