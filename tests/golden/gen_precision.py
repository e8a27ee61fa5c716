#!/usr/bin/env python3
"""Writes the float32 -> BF16 / FP16 roundings by PyTorch that tests/test_precision_formats.cpp
compares recur's rounding (kernels/precision.h) against.

Run with Debian's python3-torch (1.13, CPU):  /usr/bin/python3 tests/golden/gen_precision.py
The file is small and committed, so CI needs no PyTorch.

Each line of data/precision_torch.txt is three hex numbers: the bits of a float32 x, of
torch.tensor(x).to(torch.bfloat16) and of torch.tensor(x).to(torch.float16). The inputs
are the edge cases below (ties, carries into the exponent, the overflow edges, the FP16
subnormal boundaries, float32 subnormals, +-0, infinities, NaNs), then seeded random bit
patterns, random values in FP16's range, and random values near FP16's subnormals.
PyTorch writes one canonical NaN; recur keeps the sign and payload, so the test compares
NaNs only as NaNs.
"""
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

EDGES = [
    0x00000000, 0x3F800000,  # 0, 1
    0x7F800000, 0x7FC00000, 0x7F800001, 0x7FFFFFFF,  # infinity, NaNs
    # BF16 ties (dropped half exactly 0x8000): to even, down and up; around them.
    0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001, 0x3F818001,
    0x3FFFFFFF, 0x3FFF8000, 0x3FFF7FFF,  # BF16 carry into the exponent
    0x7F7FFFFF, 0x7F7F8000, 0x7F7F7FFF, 0x7F7F0000,  # BF16 overflow edge; float32 max
    # FP16 ties (dropped 13 bits exactly 0x1000) and the carry into the exponent.
    0x3F801000, 0x3F803000, 0x3F800FFF, 0x3F801001, 0x3FFFF000, 0x3FFFEFFF,
    # FP16 overflow edge: 65504, 65504 + ulp/2 - (float32 ulp), 65520, 65536, 1e5.
    0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x47800000, 0x47C35000,
    # FP16 smallest normal 2^-14 and just below it; largest subnormal; its tie upward.
    0x38800000, 0x387FFFFF, 0x387FC000, 0x387FE000, 0x387FDFFF,
    # FP16 smallest subnormal 2^-24; 2^-25 (a tie to zero); just above; 1.5 and 3 units/2.
    0x33800000, 0x33000000, 0x33000001, 0x32FFFFFF, 0x33400000, 0x33C00000, 0x34200000,
    0x32800000,  # 2^-26
    # float32 subnormals and the smallest normal.
    0x00000001, 0x00008000, 0x00018000, 0x00400000, 0x007FFFFF, 0x00800000, 0x00807FFF,
    0x00808000,
    0x3DCCCCCD, 0x40490FDB, 0x4B800001,  # 0.1, pi, 2^24 + 2
]


def bits(t):
    """The bits of a float32 / 16-bit tensor as Python ints."""
    if t.dtype == torch.float32:
        return [v & 0xFFFFFFFF for v in t.view(torch.int32).tolist()]
    return [v & 0xFFFF for v in t.view(torch.int16).tolist()]


def main():
    torch.manual_seed(22)
    edges = torch.tensor([e - (1 << 32) if e >= 1 << 31 else e for e in EDGES], dtype=torch.int32)
    edges = edges.view(torch.float32)
    inputs = [edges, -edges]
    inputs.append(torch.randint(-(1 << 31), 1 << 31, (3000,), dtype=torch.int32).view(torch.float32))
    inputs.append(torch.empty(2000).uniform_(-70000.0, 70000.0))
    # Magnitudes 2^-27 .. 2^-13, both signs: FP16's subnormals and its smallest normals.
    small = torch.exp2(torch.empty(2000).uniform_(-27.0, -13.0))
    inputs.append(small * torch.where(torch.rand(2000) < 0.5, -1.0, 1.0))
    inputs.append(torch.randn(1000) * 4.0)
    x = torch.cat(inputs)
    lines = zip(bits(x), bits(x.to(torch.bfloat16)), bits(x.to(torch.float16)))
    path = os.path.join(DATA, "precision_torch.txt")
    with open(path, "w") as f:
        f.write("# float32 bits, torch bfloat16 bits, torch float16 bits (torch %s, CPU)\n"
                % torch.__version__)
        for a, b, h in lines:
            f.write("%08x %04x %04x\n" % (a, b, h))
    print("wrote %s: %d values" % (path, x.numel()))


if __name__ == "__main__":
    main()
