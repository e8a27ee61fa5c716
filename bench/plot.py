#!/usr/bin/python3
"""Turns recur_bench JSON into PNG plots.

    /usr/bin/python3 bench/plot.py RESULT.json [MORE.json ...] [--out docs] [--prefix bench]

Writes, into --out:
  <prefix>_vs_anchors.png   GFLOP/s of recur and the anchors (oneDNN, cuDNN) per problem,
                            with the sgemm ceiling as a tick, one panel per device and mode
  <prefix>_gpu_vs_cpu.png   recur's GPU time against its CPU time (only when both ran)
  <prefix>_lstm_vs_gru.png  training-step time of LSTM and GRU at equal shapes, per
                            implementation and device
With --tables FILE it also writes the results as Markdown tables (for docs/benchmarks.md).
Only rows that ran (ok) are plotted. Needs matplotlib (Debian: python3-matplotlib).
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Keyed by impl; the order is the bars' order. Each reduced precision in a lighter shade of
# its family (recur blue, oneDNN orange, cuDNN green; TF32 lightest, then BF16, then FP16).
COLORS = {"recur": "#1f77b4", "recur_tf32": "#aec7e8", "recur_bf16": "#6baed6",
          "recur_fp16": "#c6dbef", "onednn": "#ff7f0e", "onednn_bf16": "#fdae6b",
          "onednn_fp16": "#fdd0a2", "cudnn": "#2ca02c", "cudnn_tf32": "#98df8a",
          "cudnn_bf16": "#74c476", "cudnn_fp16": "#c7e9c0"}


def shape_label(r):
    s = f"{r['cell']}\nT{r['T']} B{r['B']}\nH{r['H']}"
    if r["I"] != r["H"]:
        s += f" I{r['I']}"
    if r["layers"] > 1 or r["bidirectional"]:
        s += f"\nL{r['layers']}{' bi' if r['bidirectional'] else ''}"
    return s


def key(r):
    return (r["cell"], r["T"], r["B"], r["I"], r["H"], r["layers"], r["bidirectional"])


def load(paths):
    rows, machines = [], []
    for p in paths:
        with open(p) as f:
            data = json.load(f)
        machines.append(data["machine"])
        rows += [r for r in data["results"] if r.get("ok")]
    return rows, machines


def title_suffix(machines):
    """Each run's machine once: its GPU if it had one (GPU rows), else its CPU (CPU rows)."""
    parts = []
    for m in machines:
        where = m["gpu"] if m.get("gpu") else f"{m['cpu_model']} ({m['cpu_threads']} threads)"
        text = f"{where}, {m['date_utc'][:10]}"
        if text not in parts:
            parts.append(text)
    return "; ".join(parts)


def plot_vs_anchors(rows, machines, path):
    panels = sorted({(r["device"], r["mode"]) for r in rows}, key=lambda x: (x[0], x[1] != "training"))
    if not panels:
        return False
    # Wide enough for each panel's problem labels side by side.
    most = max(len({key(r) for r in rows if (r["device"], r["mode"]) == p}) for p in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(12, 0.75 * most), 3.8 * len(panels)),
                             squeeze=False)
    for ax, (device, mode) in zip(axes[:, 0], panels):
        sel = [r for r in rows if r["device"] == device and r["mode"] == mode]
        problems = sorted({key(r) for r in sel}, key=lambda k: (k[0], k[4], k[1], k[2], k[5]))
        impls = [i for i in COLORS if any(r["impl"] == i for r in sel)]
        width = 0.8 / max(1, len(impls))
        for j, impl in enumerate(impls):
            xs, ys = [], []
            for i, k in enumerate(problems):
                for r in sel:
                    if r["impl"] == impl and key(r) == k:
                        xs.append(i + (j - (len(impls) - 1) / 2) * width)
                        ys.append(r["gflops"])
            ax.bar(xs, ys, width, label=impl, color=COLORS[impl])
        # The sgemm ceiling, one tick per problem.
        for i, k in enumerate(problems):
            c = [r["ceiling_gflops"] for r in sel if key(r) == k and r.get("ceiling_gflops")]
            if c:
                ax.hlines(c[0], i - 0.45, i + 0.45, colors="k", linestyles="--", linewidth=1,
                          label="sgemm ceiling" if i == 0 else None)
        labels = []
        for k in problems:
            r = next(r for r in sel if key(r) == k)
            labels.append(shape_label(r))
        ax.set_xticks(range(len(problems)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"{device}, {mode}: higher is better")
        ax.legend(fontsize=8, ncol=5)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("recur against oneDNN / cuDNN and the sgemm ceiling — " + title_suffix(machines),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_gpu_vs_cpu(rows, machines, path):
    recur = [r for r in rows if r["impl"] == "recur"]
    pairs = []
    for g in recur:
        if g["device"] != "gpu":
            continue
        for c in recur:
            if c["device"] == "cpu" and key(c) == key(g) and c["mode"] == g["mode"]:
                pairs.append((g, c))
    if not pairs:
        return False
    fig, ax = plt.subplots(figsize=(max(10, 0.9 * len(pairs)), 4))
    labels = [shape_label(g) + f"\n{g['mode']}" for g, _ in pairs]
    ax.bar(range(len(pairs)), [c["median_ms"] / g["median_ms"] for g, c in pairs], color="#9467bd")
    ax.set_xticks(range(len(pairs)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("CPU time / GPU time")
    ax.set_yscale("log")
    ax.set_title("recur: GPU speed-up over the CPU backend — " + title_suffix(machines), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_lstm_vs_gru(rows, machines, path):
    train = [r for r in rows if r["mode"] == "training" and r["cell"] in ("lstm", "gru")]
    groups = {}
    for r in train:
        k = (r["device"], r["impl"], r["T"], r["B"], r["I"], r["H"], r["layers"], r["bidirectional"])
        groups.setdefault(k, {})[r["cell"]] = r
    both = sorted((k, v) for k, v in groups.items() if len(v) == 2)
    if not both:
        return False
    fig, ax = plt.subplots(figsize=(max(11, 0.55 * len(both)), 4.5))
    xs = range(len(both))
    ax.bar([x - 0.2 for x in xs], [v["lstm"]["median_ms"] for _, v in both], 0.4, label="LSTM")
    ax.bar([x + 0.2 for x in xs], [v["gru"]["median_ms"] for _, v in both], 0.4, label="GRU")
    for x, (_, v) in zip(xs, both):
        ratio = v["lstm"]["median_ms"] / v["gru"]["median_ms"]
        ax.text(x, max(v["lstm"]["median_ms"], v["gru"]["median_ms"]), f"{ratio:.2f}x",
                ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{k[1]}\n{k[0]}\nT{k[2]} B{k[3]}\nH{k[5]}" + (f" L{k[6]}" if k[6] > 1 else "")
                        + (" bi" if k[7] else "") for k, _ in both], fontsize=7)
    ax.set_ylabel("training step, ms (log)")
    ax.set_yscale("log")
    ax.set_title("LSTM vs GRU training step (label: LSTM time / GRU time; GEMM FLOPs ratio 4/3) — "
                 + title_suffix(machines), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def markdown_tables(rows):
    """One table per (device, mode): recur, each anchor, ceiling, ratios."""
    out = []
    for device, mode in sorted({(r["device"], r["mode"]) for r in rows}, key=lambda x: (x[0], x[1] != "training")):
        sel = [r for r in rows if r["device"] == device and r["mode"] == mode]
        impls = [i for i in COLORS if any(r["impl"] == i for r in sel)]
        # recur's rows at each precision beside the anchor each is paired with (recur_bench's
        # pairing: onednn_bf16 with recur_bf16, cudnn_tf32 with recur_tf32, ...).
        pairs = sorted({(r["impl"], r["anchor"]) for r in sel if r.get("anchor")},
                       key=lambda p: list(COLORS).index(p[0]) if p[0] in COLORS else len(COLORS))
        out.append(f"**{device}, {mode}** (median ms [p10, p90]; GFLOP/s; % of the sgemm ceiling)\n")
        head = ["problem"] + [f"{i} ms" for i in impls] + [f"{i} GFLOP/s (% ceiling)" for i in impls]
        head += ["sgemm ceiling GFLOP/s"] + [f"{m} vs {a} (>1: recur faster)" for m, a in pairs]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        problems = sorted({key(r) for r in sel}, key=lambda k: (k[0], k[4], k[1], k[2], k[5], k[6]))
        for k in problems:
            by = {r["impl"]: r for r in sel if key(r) == k}
            any_r = next(iter(by.values()))
            label = shape_label(any_r).replace("\n", " ")
            cells = [label]
            for i in impls:
                r = by.get(i)
                cells.append(f"{r['median_ms']:.2f} [{r['p10_ms']:.2f}, {r['p90_ms']:.2f}]" if r else "—")
            for i in impls:
                r = by.get(i)
                if r and r.get("of_ceiling") is not None:
                    cells.append(f"{r['gflops']:.1f} ({100 * r['of_ceiling']:.0f}%)")
                else:
                    cells.append(f"{r['gflops']:.1f}" if r else "—")
            ceil = any_r.get("ceiling_gflops")
            cells.append(f"{ceil:.1f}" if ceil else "—")
            for mine, _ in pairs:
                rr = by.get(mine)
                if rr and rr.get("vs_anchor"):
                    spread = (f" [{rr['vs_anchor_p10']:.2f}, {rr['vs_anchor_p90']:.2f}]"
                              if rr.get("vs_anchor_p10") is not None else "")
                    cells.append(f"{rr['vs_anchor']:.2f}{spread}")
                else:
                    cells.append("—")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+")
    ap.add_argument("--out", default="docs")
    ap.add_argument("--prefix", default="bench")
    ap.add_argument("--tables", help="also write Markdown tables to this file")
    args = ap.parse_args()
    rows, machines = load(args.json)
    if args.tables:
        with open(args.tables, "w") as f:
            f.write(markdown_tables(rows))
        print("wrote", args.tables)
    os.makedirs(args.out, exist_ok=True)
    for name, fn in (("vs_anchors", plot_vs_anchors), ("gpu_vs_cpu", plot_gpu_vs_cpu),
                     ("lstm_vs_gru", plot_lstm_vs_gru)):
        path = os.path.join(args.out, f"{args.prefix}_{name}.png")
        if fn(rows, machines, path):
            print("wrote", path)
        else:
            print(f"{name}: no data for this plot", file=sys.stderr)


if __name__ == "__main__":
    main()
