#!/usr/bin/env python3
"""Writes the safetensors files that tests/test_checkpoint.cpp loads with recur's reader.

Run with Debian's python3-torch (1.13, CPU) and the safetensors package
(pip install safetensors):  /usr/bin/python3 tests/golden/gen_safetensors.py
The files are small and committed, so CI needs neither.

For each case, <name>.safetensors is exactly what a PyTorch user would write:
    safetensors.torch.save_file(model.state_dict(), path)
with the model in PyTorch's default float32. <name>.expected.safetensors holds a float32
input (x, h0 and for the LSTM c0) and the outputs of the same weights run in float64
(y, h_n, c_n, and for the wrapped GRU the logits of its linear head), so the reference
carries no float32 rounding of its own.

Cases:
  lstm_l2_bi  nn.LSTM(5, 4, num_layers=2, bidirectional=True); keys "weight_ih_l0", ...
  gru_head    a module holding nn.GRU(5, 4) as `rnn` and nn.Linear(4, 7) as `head`;
              keys "rnn.weight_ih_l0", ..., "head.weight", "head.bias" (loaded with the
              prefix "rnn.", the head by name)
  half        reduced-precision tensors, read by tests/test_safetensors.cpp: "x" (float32
              [3, 5]: random values, then 65520, 2^-25 * 3, 1 + 2^-8, -0, inf), and
              "x_bf16" and "x_f16", x converted by torch's .to(torch.bfloat16) and
              .to(torch.float16) (BF16 and F16 in the file)
  lstm_half   lstm_l2_bi's model (the same seed) in bfloat16 and in float16:
              model.to(torch.bfloat16).state_dict() in lstm_l2_bi.bf16.safetensors, and
              float16 in lstm_l2_bi.f16.safetensors (loaded into float32 Rnns with
              convert_dtype)

`gen_safetensors.py half` writes only the named cases.
"""
import sys
import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")


class GruHead(torch.nn.Module):
    def __init__(self, I, H, V):
        super().__init__()
        self.rnn = torch.nn.GRU(I, H)
        self.head = torch.nn.Linear(H, V)

    def forward(self, x, h0):
        y, hn = self.rnn(x, h0)
        return y, hn, self.head(y)


def lstm_case():
    torch.manual_seed(20)
    T, B, I, H = 6, 3, 5, 4
    model = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True)
    save_file(model.state_dict(), os.path.join(DATA, "lstm_l2_bi.safetensors"))
    x = torch.empty(T, B, I).uniform_(-1, 1)
    h0 = torch.empty(4, B, H).uniform_(-1, 1)
    c0 = torch.empty(4, B, H).uniform_(-1, 1)
    with torch.no_grad():
        y, (hn, cn) = model.double()(x.double(), (h0.double(), c0.double()))
    save_file({"x": x, "h0": h0, "c0": c0, "y": y.contiguous(), "h_n": hn.contiguous(),
               "c_n": cn.contiguous()},
              os.path.join(DATA, "lstm_l2_bi.expected.safetensors"),
              metadata={"torch": torch.__version__, "reference": "float64"})


def gru_case():
    torch.manual_seed(21)
    T, B, I, H, V = 5, 2, 5, 4, 7
    model = GruHead(I, H, V)
    save_file(model.state_dict(), os.path.join(DATA, "gru_head.safetensors"))
    x = torch.empty(T, B, I).uniform_(-1, 1)
    h0 = torch.empty(1, B, H).uniform_(-1, 1)
    with torch.no_grad():
        y, hn, logits = model.double()(x.double(), h0.double())
    save_file({"x": x, "h0": h0, "y": y.contiguous(), "h_n": hn.contiguous(),
               "logits": logits.contiguous()},
              os.path.join(DATA, "gru_head.expected.safetensors"),
              metadata={"torch": torch.__version__, "reference": "float64"})


def half_case():
    torch.manual_seed(23)
    x = torch.empty(3, 5).uniform_(-4, 4)
    x.view(-1)[-5:] = torch.tensor([65520.0, 3 * 2.0 ** -25, 1 + 2.0 ** -8, -0.0, float("inf")])
    save_file({"x": x, "x_bf16": x.to(torch.bfloat16), "x_f16": x.to(torch.float16)},
              os.path.join(DATA, "half.safetensors"), metadata={"torch": torch.__version__})


def lstm_half_case():
    torch.manual_seed(20)
    model = torch.nn.LSTM(5, 4, num_layers=2, bidirectional=True)
    for dtype, suffix in ((torch.bfloat16, "bf16"), (torch.float16, "f16")):
        # What model.to(dtype).state_dict() holds, without changing the model.
        state = {k: v.to(dtype) for k, v in model.state_dict().items()}
        save_file(state, os.path.join(DATA, "lstm_l2_bi.%s.safetensors" % suffix))


CASES = {"lstm_l2_bi": lstm_case, "gru_head": gru_case, "half": half_case,
         "lstm_half": lstm_half_case}

if __name__ == "__main__":
    os.makedirs(DATA, exist_ok=True)
    names = sys.argv[1:] or list(CASES)
    for name in names:
        CASES[name]()
    print("wrote " + ", ".join(names))
