#!/usr/bin/env python3
"""Plots of the gradient-flow examples (examples/gradient_flow.cpp, examples/long_range.cpp).

    python3 examples/plot_gradients.py DATA_DIR OUT_DIR

Reads the TSV files the examples wrote into DATA_DIR and writes PNGs into OUT_DIR:
gradient_flow.png, long_range_distance.png, long_range_clipping.png, long_range_depth.png.
Needs numpy and matplotlib (Debian: python3-numpy, python3-matplotlib).
"""
import csv
import math
import os
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def smooth(values, width=25):
    v = np.asarray(values, dtype=float)
    if len(v) < width:
        return v
    kernel = np.ones(width) / width
    out = np.convolve(v, kernel, mode="valid")
    return np.concatenate([np.full(width - 1, np.nan), out])


def gradient_flow(data, out):
    rows = read(os.path.join(data, "gradient_flow.tsv"))
    curves = OrderedDict()
    for r in rows:
        key = (r["model"], float(r["sigma"]))
        curves.setdefault(key, ([], []))
        norm = float(r["norm"])
        if norm > 0 and math.isfinite(norm):
            curves[key][0].append(int(r["distance"]))
            curves[key][1].append(norm)
    fig, ax = plt.subplots(figsize=(9, 6))
    styles = {"sigmoid RNN": ("tab:orange", ":"), "tanh RNN": ("tab:blue", "--")}
    gated = ["tab:green", "tab:olive", "tab:red", "tab:purple"]
    g = 0
    for (model, sigma), (d, n) in curves.items():
        if model in styles:
            color, ls = styles[model]
            alpha = 0.35 + 0.65 * min(1.0, math.log2(1 + sigma) / math.log2(17))
            ax.semilogy(d, n, ls, color=color, alpha=alpha, label=f"{model}, σ_max={sigma:.3g}")
        else:
            ax.semilogy(d, n, "-", color=gated[g % len(gated)], lw=2, label=f"{model} (σ_max={sigma:.3g})")
            g += 1
    ax.set_xlabel("distance i − j (steps)")
    ax.set_ylabel("‖∂J⁽ⁱ⁾/∂h⁽ʲ⁾‖")
    ax.set_title("Gradient flow back from the last step (recur.gradient_flow, same input)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "gradient_flow.png"), dpi=120)
    plt.close(fig)


def curves_by_run(path):
    runs = OrderedDict()
    for r in read(path):
        runs.setdefault(r["run"], ([], []))
        runs[r["run"]][0].append(float(r["loss"]))
        runs[r["run"]][1].append(float(r["grad_norm"]))
    return runs


def distance(data, out):
    runs = curves_by_run(os.path.join(data, "long_range_distance.tsv"))
    lengths = OrderedDict()
    for name in runs:
        lengths.setdefault(name.split("T=")[1], []).append(name)
    fig, axes = plt.subplots(1, len(lengths), figsize=(5 * len(lengths), 4), sharey=True, squeeze=False)
    for ax, (T, names) in zip(axes[0], lengths.items()):
        for name in names:
            ax.semilogy(smooth(runs[name][0]), label=name.split(",")[0])
        ax.axhline(1 / 6, color="gray", ls=":", label="predict the mean")
        ax.set_title(f"adding problem, T = {T}")
        ax.set_xlabel("training step")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("train MSE (moving mean of 25)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "long_range_distance.png"), dpi=120)
    plt.close(fig)


def clipping(data, out):
    runs = curves_by_run(os.path.join(data, "long_range_clipping.tsv"))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, (loss, gn) in runs.items():
        loss = np.asarray(loss)
        gn = np.asarray(gn)
        finite = np.isfinite(loss)
        a.semilogy(np.arange(len(loss))[finite], smooth(loss, 1)[finite], label=name)
        bad = np.where(~np.isfinite(loss) | ~np.isfinite(gn))[0]
        if len(bad):
            a.axvline(bad[0], color="red", ls=":", label=f"{name}: Inf/NaN at step {bad[0]}")
        ok = np.isfinite(gn)
        b.semilogy(np.arange(len(gn))[ok], gn[ok], label=name)
    a.axhline(1 / 6, color="gray", ls=":", label="predict the mean")
    a.set_xlabel("training step")
    a.set_ylabel("train MSE")
    a.set_title("loss")
    b.set_xlabel("training step")
    b.set_ylabel("global gradient norm (before clipping)")
    b.set_title("gradient norm")
    for ax in (a, b):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "long_range_clipping.png"), dpi=120)
    plt.close(fig)


def depth(data, out):
    runs = curves_by_run(os.path.join(data, "long_range_depth.tsv"))
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (loss, _) in runs.items():
        ax.semilogy(smooth(loss), label=name)
    ax.axhline(1 / 6, color="gray", ls=":", label="predict the mean")
    ax.set_xlabel("training step")
    ax.set_ylabel("train MSE (moving mean of 25)")
    ax.set_title("8-layer tanh RNN stacks: connections between layers")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "long_range_depth.png"), dpi=120)
    plt.close(fig)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    data, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    gradient_flow(data, out)
    distance(data, out)
    clipping(data, out)
    depth(data, out)
    print("wrote", ", ".join(f"{out}/{n}.png" for n in
                             ["gradient_flow", "long_range_distance", "long_range_clipping", "long_range_depth"]))


if __name__ == "__main__":
    main()
