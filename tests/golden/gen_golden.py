#!/usr/bin/env python3
"""Writes the golden files that tests/test_golden.cpp compares recur against.

Run with Debian's python3-torch (1.13, CPU):  /usr/bin/python3 tests/golden/gen_golden.py
The files are small and committed, so CI needs no PyTorch.

Each case draws a model, an input, initial states and the loss weights dy, dh_n, dc_n
from a fixed seed, runs forward in float64, takes
    J = sum(y * dy) + sum(h_n * dh_n) + sum(c_n * dc_n)
and records the outputs, final states and every gradient (dx, dh0, dc0 and one per
parameter, named "grad.<parameter name>").

PyTorch's own nn.RNN / nn.LSTM / nn.GRU give the references for the tanh and relu RNN,
the LSTM and the (linear-before-reset) GRU. The sigmoid RNN and the reset-before-product
GRU have no PyTorch module; their references are written out below in float64 from the
equations in docs/design.md, and autograd differentiates them.
"""
import os

import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")


def write(path, tensors, comment):
    with open(path, "w") as f:
        f.write("# " + comment + "\n")
        for name, t in tensors.items():
            t = t.detach().contiguous().reshape(-1) if t.dim() > 0 else t.detach().reshape(1)
            shape = list(tensors[name].shape)
            f.write("tensor %s %d %s\n" % (name, len(shape), " ".join(str(d) for d in shape)))
            f.write(" ".join("%.17g" % v for v in t.tolist()) + "\n")


class ManualRnn(torch.nn.Module):
    """Single-layer cells without a PyTorch module, in PyTorch's parameter layout."""

    def __init__(self, kind, input_size, hidden_size, bias):
        super().__init__()
        gates = 3 if kind == "gru_rbp" else 1
        k = hidden_size ** -0.5
        u = lambda *s: torch.nn.Parameter(torch.empty(*s).uniform_(-k, k))
        self.kind, self.hidden_size, self.bias = kind, hidden_size, bias
        self.weight_ih_l0 = u(gates * hidden_size, input_size)
        self.weight_hh_l0 = u(gates * hidden_size, hidden_size)
        if bias:
            self.bias_ih_l0 = u(gates * hidden_size)
            self.bias_hh_l0 = u(gates * hidden_size)

    def forward(self, x, h0):
        h = h0[0]
        H = self.hidden_size
        b_ih = self.bias_ih_l0 if self.bias else torch.zeros(self.weight_ih_l0.shape[0])
        b_hh = self.bias_hh_l0 if self.bias else torch.zeros(self.weight_hh_l0.shape[0])
        ys = []
        for t in range(x.shape[0]):
            gx = x[t] @ self.weight_ih_l0.T + b_ih
            if self.kind == "rnn_sigmoid":
                h = torch.sigmoid(gx + h @ self.weight_hh_l0.T + b_hh)
            else:  # reset-before-product GRU (Cho et al. 2014)
                w_r, w_z, w_n = self.weight_hh_l0.split(H)
                b_r, b_z, b_n = b_hh.split(H)
                r = torch.sigmoid(gx[:, :H] + h @ w_r.T + b_r)
                z = torch.sigmoid(gx[:, H:2 * H] + h @ w_z.T + b_z)
                n = torch.tanh(gx[:, 2 * H:] + (r * h) @ w_n.T + b_n)
                h = (1 - z) * n + z * h
            ys.append(h)
        return torch.stack(ys), h.unsqueeze(0)


def make_model(kind, I, H, bias, layers, bidirectional, proj):
    kw = dict(bias=bias, num_layers=layers, bidirectional=bidirectional)
    if kind in ("rnn_tanh", "rnn_relu"):
        return torch.nn.RNN(I, H, nonlinearity=kind[4:], **kw)
    if kind == "lstm":
        return torch.nn.LSTM(I, H, proj_size=proj, **kw)
    if kind == "gru":
        return torch.nn.GRU(I, H, **kw)
    assert layers == 1 and not bidirectional
    return ManualRnn(kind, I, H, bias)


def golden_case(name, kind, T, B, I, H, bias=True, seed=0, layers=1, bidirectional=False,
                lengths=None, proj=0):
    torch.manual_seed(seed)
    model = make_model(kind, I, H, bias, layers, bidirectional, proj)
    lstm = kind == "lstm"
    LD = layers * (2 if bidirectional else 1)
    x = torch.empty(T, B, I).uniform_(-1, 1).requires_grad_()
    h0 = torch.empty(LD, B, proj or H).uniform_(-1, 1).requires_grad_()
    c0 = torch.empty(LD, B, H).uniform_(-1, 1).requires_grad_() if lstm else None
    state = (h0, c0) if lstm else h0
    if lengths is not None:  # PackedSequence, lengths in any order
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.tensor(lengths), enforce_sorted=False)
        y, state = model(packed, state)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=T)
    else:
        y, state = model(x, state)
    hn, cn = state if lstm else (state, None)
    dy = torch.empty_like(y).uniform_(-1, 1)
    dhn = torch.empty_like(hn).uniform_(-1, 1)
    loss = (y * dy).sum() + (hn * dhn).sum()
    out = {}
    if lstm:
        dcn = torch.empty_like(cn).uniform_(-1, 1)
        loss = loss + (cn * dcn).sum()
    loss.backward()
    for pname, p in model.named_parameters():
        out[pname] = p
    out.update(x=x, h0=h0, dy=dy, dh_n=dhn, y=y, h_n=hn)
    if lengths is not None:
        out["lengths"] = torch.tensor(lengths, dtype=torch.float64)
    if lstm:
        out.update(c0=c0, dc_n=dcn, c_n=cn)
    out.update(dx=x.grad, dh0=h0.grad)
    if lstm:
        out["dc0"] = c0.grad
    for pname, p in model.named_parameters():
        out["grad." + pname] = p.grad
    comment = ("%s: cell %s, T=%d B=%d I=%d H=%d bias=%s seed=%d layers=%d bidirectional=%s, "
               "%storch %s float64") % (name, kind, T, B, I, H, bias, seed, layers, bidirectional,
                                        "proj_size=%d, " % proj if proj else "", torch.__version__)
    write(os.path.join(DATA, name + ".txt"), out, comment)


CASES = [
    ("rnn_tanh", "rnn_tanh", 5, 3, 4, 6, True, 1),
    ("rnn_relu", "rnn_relu", 5, 3, 4, 6, True, 2),
    ("rnn_sigmoid", "rnn_sigmoid", 5, 3, 4, 6, True, 3),
    ("lstm", "lstm", 6, 3, 5, 7, True, 4),
    ("lstm_nobias", "lstm", 4, 2, 3, 5, False, 5),
    ("gru", "gru", 6, 3, 5, 7, True, 6),
    ("gru_rbp", "gru_rbp", 6, 3, 5, 7, True, 7),
    # Stacks: bidirectional (layer by layer) and unidirectional (the wavefront schedule).
    ("lstm_l2_bi", "lstm", 5, 3, 4, 6, True, 8, 2, True),
    ("lstm_l3_bi", "lstm", 4, 2, 5, 4, True, 9, 3, True),
    ("gru_l2_bi", "gru", 5, 3, 4, 6, True, 10, 2, True),
    ("gru_l3_bi", "gru", 4, 2, 5, 4, True, 11, 3, True),
    ("rnn_tanh_l3", "rnn_tanh", 6, 3, 4, 5, True, 12, 3, False),
    ("lstm_l3", "lstm", 6, 2, 4, 5, True, 13, 3, False),
    # Variable length (pack_padded_sequence): sorted and unsorted lengths.
    ("lstm_l2_bi_packed_sorted", "lstm", 6, 4, 3, 5, True, 14, 2, True, [6, 5, 3, 1]),
    ("lstm_l2_bi_packed", "lstm", 6, 4, 3, 5, True, 15, 2, True, [2, 6, 1, 4]),
    ("gru_l2_bi_packed_sorted", "gru", 6, 4, 3, 5, True, 16, 2, True, [6, 6, 4, 2]),
    ("gru_l2_bi_packed", "gru", 6, 4, 3, 5, True, 17, 2, True, [3, 1, 6, 5]),
    ("lstm_l3_packed", "lstm", 5, 3, 4, 4, True, 18, 3, False, [2, 5, 3]),
    # LSTM projection (proj_size P < H): h and y have P features, c has H.
    ("lstm_proj", "lstm", 6, 3, 5, 7, True, 19, 1, False, None, 3),
    ("lstm_proj_nobias", "lstm", 4, 2, 3, 6, False, 20, 1, False, None, 2),
    ("lstm_proj_l3", "lstm", 5, 3, 4, 6, True, 21, 3, False, None, 4),
    ("lstm_proj_l2_bi", "lstm", 5, 3, 4, 6, True, 22, 2, True, None, 3),
    ("lstm_proj_l2_bi_packed", "lstm", 6, 4, 3, 5, True, 23, 2, True, [2, 6, 1, 4], 2),
    ("lstm_proj_l3_packed", "lstm", 5, 3, 4, 5, True, 24, 3, False, [2, 5, 3], 3),
]

if __name__ == "__main__":
    os.makedirs(DATA, exist_ok=True)
    for case in CASES:
        golden_case(*case)
        print("wrote", case[0])
