#!/usr/bin/env python3
"""Plots of the gradient-flow examples (examples/gradient_flow.cpp, long_range.cpp, depth.cpp).

    python3 examples/plot_gradients.py DATA_DIR OUT_DIR

Reads the TSV files the examples wrote into DATA_DIR and writes PNGs into OUT_DIR:
gradient_flow.png, long_range_distance.png, long_range_clipping.png, and depth_curves.png,
depth_loss.png, depth_gradient.png, depth_highway.png.
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
    # Left: every model over the whole range (the vanilla RNNs span ~130 decades); right:
    # only the gated cells, on an axis of their own, so that they can be compared.
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.15, 1]})
    styles = {"sigmoid RNN": ("tab:orange", ":"), "tanh RNN": ("tab:blue", "--")}
    gated = ["tab:green", "tab:olive", "tab:red", "tab:purple"]
    g = 0
    for (model, sigma), (d, n) in curves.items():
        if model in styles:
            color, ls = styles[model]
            alpha = 0.35 + 0.65 * min(1.0, math.log2(1 + sigma) / math.log2(17))
            a.semilogy(d, n, ls, color=color, alpha=alpha, label=f"{model}, σ_max={sigma:.3g}")
        else:
            color = gated[g % len(gated)]
            g += 1
            for ax in (a, b):
                ax.semilogy(d, n, "-", color=color, lw=2, label=f"{model} (σ_max={sigma:.3g})")
    for ax in (a, b):
        ax.axhline(1.0, color="black", lw=1, label="1: neither shrinks nor grows")
        ax.set_xlabel("distance i − j (steps)")
        ax.set_ylabel(r"$\Vert \partial J^{(i)} / \partial h^{(j)}\Vert $")
        ax.grid(True, which="major", alpha=0.3)
    # Ticks every 20 decades, with one at 1 (matplotlib's own fall between 1 and 100 here).
    lo, hi = a.get_ylim()
    a.set_yticks([10.0 ** k for k in range(-200, 201, 20) if lo <= 10.0 ** k <= hi])
    a.set_ylim(lo, hi)
    a.set_title("every model: vanilla RNNs vanish or explode geometrically")
    b.set_title("zoom: the gated cells (LSTM, GRU)")
    a.legend(fontsize=7.5, ncol=2, loc="lower left")
    b.legend(fontsize=8, loc="lower left")
    fig.suptitle("Gradient flow back from the last step (recur::gradient_flow, one layer, H = 64, same input)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "gradient_flow.png"), dpi=110)
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
    # Three views: the run without clipping exploding (an axis up to ~1e35), then the
    # clipped run on axes of its own: its gradient norm before clipping, and its learning.
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, (loss, gn) in runs.items():
        loss = np.asarray(loss)
        gn = np.asarray(gn)
        steps = np.arange(len(loss))
        if "no clipping" in name:
            bad = np.where(~np.isfinite(loss) | ~np.isfinite(gn))[0]
            end = bad[0] if len(bad) else len(loss)
            a.semilogy(steps[:end], gn[:end], "o-", color="tab:red", ms=3, label="gradient norm")
            a.semilogy(steps[:end], loss[:end], "s--", color="tab:gray", ms=3, label="train MSE")
            if len(bad):
                a.axvline(bad[0], color="red", ls=":", label=f"Inf/NaN from step {bad[0]}")
            a.set_xlim(-0.5, end + 3)
        else:
            ok = np.isfinite(gn)
            b.semilogy(steps[ok], gn[ok], color="tab:blue", lw=0.6, alpha=0.5, label="per step")
            b.semilogy(steps, smooth(gn), color="tab:blue", lw=2, label="moving mean of 25")
            b.axhline(1.0, color="black", ls="--", label="clipped to 1 above this")
            c.plot(steps, smooth(loss), color="tab:blue", lw=2, label="train MSE (moving mean of 25)")
            c.axhline(1 / 6, color="gray", ls=":", label="predict the mean (1/6)")
            c.set_ylim(0, 0.3)
    a.set_title("no clipping: the norm explodes, then Inf/NaN")
    a.set_xlabel("training step")
    a.set_ylabel("value (log)")
    b.set_title("clip_grad_norm at 1: the norm before clipping")
    b.set_xlabel("training step")
    b.set_ylabel("global gradient norm")
    c.set_title("clip_grad_norm at 1: it learns")
    c.set_xlabel("training step")
    c.set_ylabel("train MSE (linear)")
    for ax in (a, b, c):
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("ReLU RNN with σ_max(W_hh) = 4, SGD with momentum: the same run without and with clipping")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "long_range_clipping.png"), dpi=110)
    plt.close(fig)


CONNECTIONS = ["None", "Residual", "Highway", "Dense"]
COLORS = {"None": "tab:red", "Residual": "tab:blue", "Highway": "tab:green", "Dense": "tab:purple"}
CELLS = ["tanh RNN", "LSTM"]


def depth_runs(data):
    """Every run of examples/depth: key (cell, connection, layers, lr, gate_bias) -> row."""
    runs = OrderedDict()
    for r in read(os.path.join(data, "depth_runs.tsv")):
        key = (r["cell"], r["connection"], int(r["layers"]), r["lr"], r["gate_bias"])
        runs[key] = r
    return runs


def depth_table(data, name, value):
    out = OrderedDict()
    for r in read(os.path.join(data, name)):
        key = (r["cell"], r["connection"], int(r["layers"]), r["lr"], r["gate_bias"])
        out.setdefault(key, []).append(value(r))
    return out


def kept(runs, cell, connection, layers):
    """The kept run of (cell, connection, layers); the one-layer reference is 'None'."""
    for key, r in runs.items():
        if key[0] == cell and key[2] == layers and r["kept"] == "1":
            if layers == 1 or key[1] == connection:
                return key
    return None


def depth(data, out):
    runs = depth_runs(data)
    depths = sorted({k[2] for k in runs})
    # The closer look is at 8 layers (the notes' "up to 8"), or the deepest stack that was
    # swept (more than one highway run) when there is none of 8.
    swept = [d for d in depths if sum(1 for k in runs if k[1] == "Highway" and k[2] == d) > 1]
    sweep_depth = 8 if 8 in swept else max(swept)
    curves = depth_table(data, "depth_curves.tsv", lambda r: float(r["loss"]))
    flow = depth_table(data, "depth_flow.tsv",
                       lambda r: (r["when"], int(r["layer"]), int(r["j"]), float(r["norm"])))
    gates = depth_table(data, "depth_gates.tsv",
                        lambda r: (r["when"], int(r["layer"]), float(r["gate"])))

    # 1. Learning curves at the sweep depth, kept setting per connection.
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    for ax, cell in zip(axes, CELLS):
        ref = kept(runs, cell, "None", 1)
        ax.semilogy(smooth(curves[ref]), color="gray", ls="--", label=f"1 layer (lr {ref[3]})")
        for c in CONNECTIONS:
            key = kept(runs, cell, c, sweep_depth)
            label = f"{c} (lr {key[3]}" + (f", b_g {key[4]})" if c == "Highway" else ")")
            ax.semilogy(smooth(curves[key]), color=COLORS[c], label=label)
        ax.axhline(1 / 6, color="black", ls=":", label="predict the mean")
        ax.set_title(f"{sweep_depth}-layer {cell} stacks (kept setting of each)")
        ax.set_xlabel("training step")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("train MSE (moving mean of 25)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "depth_curves.png"), dpi=110)
    plt.close(fig)

    # 2. Held-out MSE against depth; 3. the gradient reaching layer 0 against depth, over
    # the whole range (None falls by many decades) and zoomed on the connections near 1.
    def against_depth(cell, c):
        xs, init, trained, test = [], [], [], []
        for d in depths:
            key = kept(runs, cell, c, d)
            if key is None:
                continue
            xs.append(d)
            test.append(float(runs[key]["test_mse"]))
            f = flow.get(key, [])
            last = max((j for (_, _, j, _) in f), default=0)
            init.append(next((n for (w, l, j, n) in f if w == "init" and l == 0 and j == last), np.nan))
            trained.append(next((n for (w, l, j, n) in f if w == "trained" and l == 0 and j == last), np.nan))
        return xs, init, trained, test

    def depth_axis(ax):
        ax.set_xscale("log", base=2)
        ax.set_xticks(depths)
        ax.set_xticklabels([str(d) for d in depths])
        ax.set_xlabel("layers")
        ax.grid(True, which="major", alpha=0.3)

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    for ax, cell in zip(axes, CELLS):
        for c in CONNECTIONS:
            xs, _, _, test = against_depth(cell, c)
            ax.semilogy(xs, test, "o-", color=COLORS[c], label=c)
        depth_axis(ax)
        ax.axhline(1 / 6, color="black", ls=":", label="predict the mean")
        ax.set_title(f"{cell}: test MSE of each connection's kept setting")
        ax.legend(fontsize=8, loc="center left")
    axes[0].set_ylabel("test MSE")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "depth_loss.png"), dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    norm = r"$\Vert \partial J / \partial h^{(0)}_{T-1}\Vert $"
    for col, cell in enumerate(CELLS):
        for row in range(2):
            ax = axes[row][col]
            for c in CONNECTIONS:
                xs, init, trained, _ = against_depth(cell, c)
                ax.semilogy(xs, init, "o-", color=COLORS[c], label=f"{c}, at initialisation")
                ax.semilogy(xs, trained, "s--", color=COLORS[c], alpha=0.7, label=f"{c}, after training")
            depth_axis(ax)
            ax.axhline(1.0, color="black", lw=1, label=r"1 $= \Vert w\Vert $ at the output")
            if row == 0:
                ax.set_title(f"{cell}: {norm}, the gradient reaching layer 0")
                ax.legend(fontsize=7, loc="lower left", ncol=2)
            else:
                ax.set_ylim(0.05, 20)
                ax.set_title(f"{cell}: zoom on 0.05-20 (None leaves it below)")
            ax.set_ylabel(r"norm ($J = \langle w, y_{T-1} \rangle$, $\Vert w\Vert  = 1$)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "depth_gradient.png"), dpi=110)
    plt.close(fig)

    # 4. Highway at the sweep depth: each gate-bias start at its best lr, its gates per layer
    # and the gradient reaching each layer, beside Residual and None.
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    biases = sorted({k[4] for k in runs if k[1] == "Highway"}, key=float, reverse=True)
    cmap = plt.get_cmap("viridis")
    for row, cell in enumerate(CELLS):
        ga, gi, gt = axes[row]
        for n, b in enumerate(biases):
            cands = [k for k in runs if k[0] == cell and k[1] == "Highway" and k[2] == sweep_depth and k[4] == b]
            if not cands:
                continue
            key = min(cands, key=lambda k: float(runs[k]["val_mse"]) if math.isfinite(float(runs[k]["val_mse"])) else 1e9)
            color = cmap(n / max(1, len(biases) - 1) * 0.85)
            label = f"b_g {b} (lr {key[3]}): test MSE {float(runs[key]['test_mse']):.2g}"
            g = gates.get(key, [])
            for when, ls in (("init", ":"), ("trained", "-")):
                pts = sorted((l, v) for (w, l, v) in g if w == when)
                ga.plot([p[0] for p in pts], [p[1] for p in pts], ls, marker="o", ms=3, color=color,
                        label=label if when == "trained" else None)
            for ax, when in ((gi, "init"), (gt, "trained")):
                f = flow.get(key, [])
                last = max((j for (_, _, j, _) in f), default=0)
                pts = sorted((l, v) for (w, l, j, v) in f if w == when and j == last)
                ax.semilogy([p[0] for p in pts], [p[1] for p in pts], "o-", ms=3, color=color, label=label)
        for c in ("None", "Residual"):
            key = kept(runs, cell, c, sweep_depth)
            f = flow.get(key, [])
            last = max((j for (_, _, j, _) in f), default=0)
            for ax, when in ((gi, "init"), (gt, "trained")):
                pts = sorted((l, v) for (w, l, j, v) in f if w == when and j == last)
                ax.semilogy([p[0] for p in pts], [p[1] for p in pts], "s--", ms=3, color=COLORS[c],
                            label=f"{c} (lr {key[3]})")
        ga.set_ylim(0, 1)
        ga.set_title(f"{cell}, {sweep_depth} layers: mean highway gate g per layer")
        ga.set_xlabel("layer l (g mixes y_l with u_l; none at layer 0)")
        ga.set_ylabel("mean g  (dotted: at initialisation)")
        for ax, when in ((gi, "at initialisation"), (gt, "after training")):
            ax.axhline(1.0, color="black", lw=1)
            ax.set_title(f"{cell}: " + r"$\Vert \partial J / \partial h^{(l)}_{T-1}\Vert $" + f" per layer, {when}")
            ax.set_xlabel("layer l")
            ax.set_ylabel(r"norm ($\Vert w\Vert  = 1$ at the output)")
        for ax in (ga, gi, gt):
            ax.grid(True, which="major", alpha=0.3)
        ga.legend(fontsize=7.5, loc="upper right")
        # The b_g colours are named in the gates panel; here only the two references.
        handles, labels = gi.get_legend_handles_labels()
        refs = [(h, t) for h, t in zip(handles, labels) if not t.startswith("b_g")]
        gi.legend([h for h, _ in refs], [t for _, t in refs], fontsize=7.5, loc="best")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "depth_highway.png"), dpi=110)
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
    names = ["gradient_flow", "long_range_distance", "long_range_clipping",
             "depth_curves", "depth_loss", "depth_gradient", "depth_highway"]
    print("wrote", ", ".join(f"{out}/{n}.png" for n in names))


if __name__ == "__main__":
    main()
