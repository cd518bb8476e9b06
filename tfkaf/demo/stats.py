"""Welch's t-test (Welch, 1947, Biometrika 34) and the demo's verdicts.

Self-contained (no SciPy): the two-sided p-value comes from the regularized
incomplete beta function, evaluated by its continued fraction.
"""

import math

import numpy as np


VERDICT_ALPHA = 0.05


VERDICT_RULE = (
    "verdict: Welch's two-sample t-test (unequal variances, two-sided) of "
    "the variant's per-seed test accuracies against the ReLU model's of the "
    f"same architecture; 'better' or 'worse' when p < {VERDICT_ALPHA} (by "
    "the sign of the difference of the means), else 'no clear difference'. "
    "The accuracy tested is that of each run's final weights (no epoch or "
    "model is chosen on the test set).")


def _beta_fraction(a, b, x):
  """The continued fraction of the regularized incomplete beta function
  (modified Lentz's method)."""
  tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
  d = 1.0 / (d if abs(d) > tiny else tiny)
  result = d
  for m in range(1, 300):
    for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                      -(a + m) * (a + b + m) * x / ((a + 2 * m) *
                                                    (a + 2 * m + 1))):
      d = 1.0 + numerator * d
      d = 1.0 / (d if abs(d) > tiny else tiny)
      c = 1.0 + numerator / c
      c = c if abs(c) > tiny else tiny
      result *= c * d
    if abs(c * d - 1.0) < 1e-15:
      break
  return result


def _betainc(a, b, x):
  """The regularized incomplete beta function I_x(a, b), 0 <= x <= 1."""
  if x <= 0.0 or x >= 1.0:
    return 0.0 if x <= 0.0 else 1.0
  front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                   + a * math.log(x) + b * math.log1p(-x))
  if x < (a + 1.0) / (a + b + 2.0):
    return front * _beta_fraction(a, b, x) / a
  return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def welch_t_test(a, b):
  """Welch's two-sample t-test: (t, degrees of freedom, two-sided p).

  p is 1 when either sample has fewer than 2 values; when both samples have
  zero variance, p is 0 for different means and 1 for equal ones.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if len(a) < 2 or len(b) < 2:
    return 0.0, 0.0, 1.0
  va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
  diff = a.mean() - b.mean()
  if va + vb == 0.0:
    return (math.copysign(math.inf, diff) if diff else 0.0, 0.0,
            0.0 if diff else 1.0)
  t = diff / math.sqrt(va + vb)
  dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
  return float(t), float(dof), float(_betainc(dof / 2.0, 0.5,
                                             dof / (dof + t * t)))


def verdict(variant_scores, baseline_scores, alpha=VERDICT_ALPHA):
  """'better', 'worse' or 'no clear difference' (see `VERDICT_RULE`), and p."""
  t, _, p = welch_t_test(variant_scores, baseline_scores)
  if p < alpha:
    return ("better" if t > 0 else "worse"), p
  return "no clear difference", p


def format_p(p):
  return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def format_mean_std(values, scale=100.0, digits=1):
  """'mean ± std' (sample std; just the mean for a single value)."""
  values = np.asarray(values, np.float64) * scale
  if len(values) < 2:
    return f"{values.mean():.{digits}f}"
  return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def summary(values):
  values = np.asarray(values, np.float64)
  return {"mean": float(values.mean()),
          "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
