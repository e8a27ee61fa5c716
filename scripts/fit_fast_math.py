#!/usr/bin/python3
"""Fits the polynomials of kernels/fast_math.h (the CPU's float exp and tanh).

Near-minimax relative error by Lawson's iteratively reweighted least squares on a dense
Chebyshev grid, in float64. Prints the coefficients rounded to float32 and the fit's
maximum relative error; tests/test_fast_math.cpp checks the float32 code exhaustively.

    exp(r) ~ 1 + r + r^2 * E(r)          |r| <= ln(2)/2   (after r = x - n ln 2)
    tanh(x) ~ x + x^3 * T(x^2)           |x| <  kTanhSmall
"""
import numpy as np

TANH_SMALL = 0.625


def lawson(basis, target, weight, iterations=200):
    """Coefficients c minimising max |weight * (basis @ c - target)| (approximately)."""
    lw = np.ones(len(target)) / len(target)
    for _ in range(iterations):
        sw = np.sqrt(lw) * weight
        c, *_ = np.linalg.lstsq(basis * sw[:, None], target * sw, rcond=None)
        err = np.abs(weight * (basis @ c - target))
        lw = lw * err
        lw /= lw.sum()
    return c, err.max()


def chebyshev_grid(lo, hi, n=20001):
    k = np.arange(n)
    return (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (k + 0.5) / n)


def fit_exp(degree=4):
    half = np.log(2) / 2
    r = chebyshev_grid(-half, half)
    r = r[np.abs(r) > 1e-6]
    target = (np.expm1(r) - r) / r**2
    basis = np.stack([r**k for k in range(degree + 1)], axis=1)
    # Relative error of exp(r): r^2 * (E(r) - target) / exp(r).
    return lawson(basis, target, r**2 / np.exp(r))


def fit_tanh(degree=4):
    x = chebyshev_grid(1e-4, TANH_SMALL)
    z = x * x
    target = (np.tanh(x) - x) / x**3
    basis = np.stack([z**k for k in range(degree + 1)], axis=1)
    return lawson(basis, target, x**3 / np.tanh(x))


def show(name, coefficients, err):
    print(f"{name}: max relative error {err:.3g} (float32 ulp is {2.0**-24:.3g} to {2.0**-23:.3g})")
    for k, c in enumerate(coefficients):
        print(f"  c{k} = {np.float32(c)!r:>16}f  ({c:.17g})")


if __name__ == "__main__":
    show("exp: E(r)", *fit_exp())
    show("tanh: T(z)", *fit_tanh())
