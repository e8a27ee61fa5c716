#!/usr/bin/env python3
"""PyTorch's side of examples/large_lm: the same token-level LSTM language model and step.

    python3 bench/torch_large_lm.py [--config tiny|small|1b] [--device auto|cpu|cuda]
        [--math fp32|tf32|bf16|fp16] [--layers N] [--hidden N] [--embed N] [--vocab N]
        [--seq N] [--batch N] [--steps N] [--warmup N] [--threads N] [--proj P] [--json FILE]

nn.Embedding(V, E) -> nn.LSTM(E, H, L, proj_size=P) -> nn.Linear(P or H, V) -> cross-entropy,
Adam (fused on CUDA where this torch has it), clip_grad_norm_(1.0); on CUDA, bf16/fp16 under
torch.autocast (fp16 with a GradScaler) and tf32 through torch.backends' switches; the
presets and the synthetic stream (x_t = (37 x_{t-1} + 11) mod V, one in eight noise) are
train_large_lm's. Steps after --warmup are timed (the loss read only at the end), as the
recur trainer times them. Prints one summary line, and one JSON line to --json: tokens/s,
MFU against the same peak, and peak memory (torch.cuda.max_memory_allocated on a GPU;
on a CPU the process's peak resident set, which is not recur's ledger: compare it with
train_large_lm's own rss). Without torch it says so and exits 0.
"""
import argparse
import json
import resource
import sys
import time

PRESETS = {  # layers, hidden, embed, vocab, seq, batch, steps, warmup
    "tiny": (2, 64, 64, 256, 32, 16, 60, 2),
    "small": (2, 512, 512, 1024, 64, 32, 30, 3),
    "1b": (8, 4096, 4096, 8192, 128, 64, 50, 5),
}
PEAK_TFLOPS = {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}  # H100/H200 SXM


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--math", choices=sorted(PEAK_TFLOPS), default="fp32")
    for name in ("layers", "hidden", "embed", "vocab", "seq", "batch", "steps", "warmup", "threads",
                 "proj"):
        ap.add_argument("--" + name, type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--peak-tflops", type=float, default=0.0)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("torch_large_lm: skipped, PyTorch is not installed")
        return 0
    L, H, E, V, T, B, steps, warmup = PRESETS[a.config]
    L, H, E, V = a.layers or L, a.hidden or H, a.embed or E, a.vocab or V
    T, B, steps, warmup = a.seq or T, a.batch or B, a.steps or steps, a.warmup or warmup
    gpu = a.device == "cuda" or (a.device == "auto" and torch.cuda.is_available())
    dev = torch.device("cuda" if gpu else "cpu")
    if a.threads:
        torch.set_num_threads(a.threads)
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = a.math == "tf32"
        torch.backends.cudnn.allow_tf32 = a.math == "tf32"
    elif a.math != "fp32":
        print("torch_large_lm: on the CPU only fp32 compares like with like")
        return 0

    g = torch.Generator().manual_seed(1)
    n = 1 << 18  # enough for every window the timed steps read
    noise = torch.randint(0, 8, (n,), generator=g).tolist()
    rand = torch.randint(0, V, (n,), generator=g).tolist()
    tokens, x = [], 1
    for i in range(n):  # the same recurrence as the C++ trainer (its noise draws differ)
        tokens.append(x)
        x = rand[i] if noise[i] == 0 else (37 * x + 11) % V
    stream = torch.tensor(tokens, dtype=torch.int64)
    torch.manual_seed(2)
    embed = torch.nn.Embedding(V, E).to(dev)
    P = a.proj
    O = P or H  # h's features
    lstm = torch.nn.LSTM(E, H, L, proj_size=P).to(dev)
    head = torch.nn.Linear(O, V).to(dev)
    params = list(embed.parameters()) + list(lstm.parameters()) + list(head.parameters())
    try:
        opt = torch.optim.Adam(params, lr=a.lr, fused=gpu) if gpu else torch.optim.Adam(params, lr=a.lr)
    except TypeError:  # a torch without fused Adam
        opt = torch.optim.Adam(params, lr=a.lr)
    autocast = gpu and a.math in ("bf16", "fp16")
    amp_dtype = torch.bfloat16 if a.math == "bf16" else torch.float16
    scaler = None
    if gpu and a.math == "fp16":
        scaler = torch.amp.GradScaler("cuda") if hasattr(torch.amp, "GradScaler") else torch.cuda.amp.GradScaler()
    # The dtype the LSTM's output had: PyTorch's autocast runs cuDNN's RNN in float16 even
    # under a bfloat16 autocast, so the JSON says what ran.
    ran = {}
    loss_fn = torch.nn.CrossEntropyLoss()
    starts = torch.randint(0, n - T - 1, (warmup + steps, B), generator=g)

    def step(k):
        idx = starts[k].unsqueeze(0) + torch.arange(T).unsqueeze(1)  # [T, B]
        ids, targets = stream[idx].to(dev), stream[idx + 1].to(dev)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=amp_dtype, enabled=autocast):
            y, _ = lstm(embed(ids))
            ran.setdefault("rnn_dtype", str(y.dtype).replace("torch.", ""))
            loss = loss_fn(head(y).float().view(T * B, V), targets.view(T * B))
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        return loss

    first = float(step(0))
    for k in range(1, warmup):
        step(k)
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for k in range(warmup, warmup + steps):
        loss = step(k)
    last = float(loss)
    if gpu:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens_per_s = T * B * steps / seconds
    flops = 2.0 * O * V + sum(2.0 * 4 * H * ((E if l == 0 else O) + O) + 2.0 * P * H
                              for l in range(L))
    peak = a.peak_tflops or (PEAK_TFLOPS[a.math] if gpu else 0.0)
    mfu = 3 * flops * tokens_per_s / (peak * 1e12) if peak else 0.0
    peak_bytes = (torch.cuda.max_memory_allocated() if gpu
                  else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    count = sum(p.numel() for p in params)
    print(f"torch {torch.__version__} {a.config}: {count} parameters, {dev} {a.math}, "
          f"{tokens_per_s:.0f} tokens/s, MFU {100 * mfu:.1f}%, peak memory {peak_bytes / 2**30:.2f} GiB"
          f"{'' if gpu else ' (process rss)'}, loss {first:.3f} -> {last:.3f}, "
          f"the LSTM ran in {ran.get('rnn_dtype')}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"impl": "torch", "version": torch.__version__, "config": a.config,
                       "device": str(dev), "math": a.math, "parameters": count,
                       "tokens_per_s": tokens_per_s, "mfu": mfu, "peak_bytes": peak_bytes,
                       "first_loss": first, "last_loss": last,
                       "rnn_dtype": ran.get("rnn_dtype")}, f)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
