# Development tool (not used by the build or tests): python3 scripts/dev/fit_gelu_tables.py
"""Fits the polynomial coefficients of native/vecmath.h's table-driven exp and GELU kernels.

Needs numpy and mpmath. Prints the C++ constants with their fitted and float-evaluated errors.
Fits are near-minimax (Lawson's iteratively reweighted least squares on Chebyshev points) in
relative error; coefficients are rounded to float one at a time from the highest degree, the
lower ones refitted after each rounding. The float errors are measured by evaluating the rounded
polynomials in float arithmetic (with exact-product fma) on a dense grid.
"""
import numpy as np
import mpmath as mp

mp.mp.dps = 40


def lawson(f_vals, u, powers, fixed, rel_scale, iters=200):
    s = max(np.max(np.abs(u)), 1e-30)
    A = np.stack([(u / s) ** k for k in powers], axis=1)
    target = f_vals - sum(c * u ** k for k, c in fixed.items())
    w = np.ones_like(u) / len(u)
    best = None
    for _ in range(iters):
        sw = np.sqrt(w) * rel_scale
        c, *_ = np.linalg.lstsq(A * sw[:, None], target * sw, rcond=None)
        err = (A @ c - target) * rel_scale
        m = np.max(np.abs(err))
        if best is None or m < best[1]:
            best = (c.copy(), m)
        w = w * np.abs(err) + 1e-300
        w /= w.sum()
    c, m = best
    return {k: ck / s ** k for k, ck in zip(powers, c)}, m


def fit_float(f, lo, hi, x0, deg, fixed=None, npts=400):
    """Relative near-minimax polynomial in u = x - x0 on [lo, hi], rounded to float."""
    t = np.cos(np.linspace(0, np.pi, npts))
    x = lo + (hi - lo) * (t + 1) / 2
    fx = np.array([float(f(mp.mpf(float(xi)))) for xi in x])
    u = x - x0
    fixed = dict(fixed or {})
    free = [k for k in range(deg + 1) if k not in fixed]
    coefs, m = lawson(fx, u, free, fixed, 1 / np.abs(fx))
    fit_err = m
    for k in sorted(free, reverse=True):
        fixed[k] = float(np.float32(coefs[k]))
        rest = [j for j in free if j not in fixed]
        if rest:
            coefs, m = lawson(fx, u, rest, fixed, 1 / np.abs(fx))
    return [fixed[k] for k in range(deg + 1)], fit_err


def fma32(a, b, c):
    return np.float32(np.float64(a) * np.float64(b) + np.float64(c))


def horner32(cs, w):
    p = np.float32(cs[-1])
    for c in reversed(cs[:-1]):
        p = fma32(p, w, np.float32(c))
    return p


# ---- exp: e^r = 1 + r + c2 r^2 + c3 r^3 on |r| <= ln2/16 ----
def exp_poly():
    R = float(mp.log(2) / 16) * 1.002
    cs, err = fit_float(lambda r: mp.exp(r), -R, R, 0.0, 3, fixed={0: 1.0, 1: 1.0})
    return cs, err


# ---- GELU pieces ----
SQ2PI = mp.sqrt(2 * mp.pi)
A = 2 * mp.sqrt(2 / mp.pi)
B = A * mp.mpf('0.044715')


def Q(a):  # Phi(-a)
    return mp.erfc(a / mp.sqrt(2)) / 2


def Ke(a):  # gelu_erf'(-a)
    return Q(a) - a * mp.exp(-a * a / 2) / SQ2PI


def G(a):  # sigmoid(-2u(a)), the tanh form's Phi(-a)
    return 1 / (1 + mp.exp(A * a + B * a ** 3))


def Kt(a):  # gelu_tanh'(-a)
    g = G(a)
    return g - a * g * (1 - g) * (A + 3 * B * a * a)


C = mp.mpf('1.702')


def Gq(a):  # sigmoid(-1.702a), quick gelu's F(-a)
    return 1 / (1 + mp.exp(C * a))


def Kq(a):  # quick_gelu'(-a)
    g = Gq(a)
    return g - C * a * g * (1 - g)


A0E = mp.findroot(Ke, 0.75)
A0T = mp.findroot(Kt, 0.75)
A0Q = mp.findroot(Kq, 0.75)


def over_root(K, a0):
    def f(a):
        if abs(a - a0) < mp.mpf('1e-20'):
            a = a0 + mp.mpf('1e-20')
        return K(a) / (a0 - a)
    return f


PIECES, DEG, HALF = 8, 6, 0.25   # pieces [j/2 - 1/4, j/2 + 1/4], j = 0..7, clipped at 0


def piecewise(f):
    rows = [[0.0] * PIECES for _ in range(DEG + 1)]
    worst_fit = worst_f32 = 0.0
    for j in range(PIECES):
        lo, hi = max(0.0, j * 0.5 - HALF), j * 0.5 + HALF
        cs, e = fit_float(f, lo, hi, hi, DEG)
        worst_fit = max(worst_fit, e)
        xs = np.linspace(lo, hi, 3001).astype(np.float32)
        ref = np.array([float(f(mp.mpf(float(x)))) for x in xs])
        w = (xs - np.float32(j * 0.5)).astype(np.float32) - np.float32(HALF)
        got = np.array([horner32(cs, np.float32(wi)) for wi in w], dtype=np.float64)
        worst_f32 = max(worst_f32, np.max(np.abs(got / ref - 1)))
        for k in range(DEG + 1):
            rows[k][j] = cs[k]
    return rows, worst_fit, worst_f32


def split(v):
    hi = np.float32(float(v))
    return hi, np.float32(float(v - mp.mpf(float(hi))))


if __name__ == '__main__':
    cs, e = exp_poly()
    print(f'// exp poly: fitted relative error {e:.2e}')
    print(f'c2 = {np.float32(cs[2]):.9e}f, c3 = {np.float32(cs[3]):.9e}f')
    for name, f in [('Q', Q), ('Ke', over_root(Ke, A0E)), ('G', G), ('Kt', over_root(Kt, A0T)),
                    ('Gq', Gq), ('Kq', over_root(Kq, A0Q))]:
        rows, ef, e32 = piecewise(f)
        print(f'// {name}: fitted {ef:.2e}, in float {e32:.2e}')
        print('{' + ',\n '.join('{' + ', '.join(f'{v:.9e}f' for v in r) + '}' for r in rows) + '}')
    for name, a0 in [('a0 erf', A0E), ('a0 tanh', A0T), ('a0 quick', A0Q)]:
        hi, lo = split(a0)
        print(f'// {name} = {mp.nstr(a0, 20)}: hi {hi:.9e}f lo {lo:.9e}f')
