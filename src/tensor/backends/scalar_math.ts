// Scalar special functions in double precision for the reference backend (JavaScript's Math has
// no erf). Accurate to a few ulps of float64, so float64 gradient checks stay meaningful.

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** erf(x): a series with only positive terms below 3, a continued fraction for erfc above. */
export function erf(x: number): number {
  if (x !== x) return NaN;
  const ax = Math.abs(x);
  if (ax > 6) return Math.sign(x);
  if (ax < 3) {
    // erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1))
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 200; n++) {
      term *= (2 * x2) / (2 * n + 1);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    return Math.sign(x) * TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
  }
  return Math.sign(x) * (1 - erfcLarge(ax));
}

/** erfc(x) = 1 - erf(x), without the cancellation of that difference in the upper tail. */
export function erfc(x: number): number {
  if (x !== x) return NaN;
  if (x >= 3) return x > 27 ? 0 : erfcLarge(x);
  if (x <= -3) return 2 - erfc(-x);
  return 1 - erf(x);
}

/** erfc(x) for x >= 3 by the continued fraction x + 1/2 / (x + 1 / (x + 3/2 / (x + ...))), Lentz's method. */
function erfcLarge(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 300; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? tiny : 1 / d;
    c = x + a / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / (f * Math.sqrt(Math.PI));
}
