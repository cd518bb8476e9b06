"""`tfkaf demo`: ReLU vs KAF vs 2D-KAF vs DeepBSpline on MNIST-1D.

MNIST-1D (Greydanus, 2020, "Scaling down deep learning", arXiv:2011.14439)
is generated locally by the `mnist1d` package: 4000 training and 1000 test
sequences of 40 samples, 10 classes. Its paper reports about 68% test
accuracy for a ReLU MLP and 94% for a ReLU CNN. The demo trains the paper's
two models (an MLP 40-100-100-10 with a residual second layer, a CNN of
three stride-2 convolutions with 25 channels) with the recipe of the
`mnist1d` repository (Adam, learning rate 1e-2, batch 100, no weight decay,
train/test split only), its constant learning rate replaced by a cosine
decay over a fixed number of steps (see `Recipe`), with each activation
family in place of ReLU:

* KAF, kernel activation functions (Scardapane, Van Vaerenbergh, Totaro and
  Uncini, 2019, "Kafnets: kernel-based non-parametric activation functions
  for neural networks", Neural Networks 110), started from ELU by kernel
  ridge regression as in that paper;
* 2D-KAF, the two-input KAF of the same paper;
* DeepBSpline, linear-spline activations (Bohra, Campos, Gupta, Aziznejad
  and Unser, 2020, "Learning activation functions in deep (spline) neural
  networks", IEEE Open Journal of Signal Processing 1), with the shared
  recipe and with that paper's own: a separate Adam (learning rate 1e-3)
  for the activations and a second-order total-variation (TV2) penalty of
  weight 1e-4, the defaults of its reference code.

Fair comparisons: each variant's hidden width is set so that its parameter
count is within 5% of the ReLU model's ("equal parameters"); the full run
also trains each at the ReLU model's width ("equal width"). Every model is
trained with several seeds for the same number of steps; the test accuracy
of its final weights (nothing is chosen on the test set) is compared with
ReLU's by Welch's two-sample t-test over the seeds (Welch, 1947,
Biometrika 34). The table, the per-seed numbers (JSON),
plots of the learned activations over a histogram of their inputs, and the
accuracy curves are written to the output directory; the seed-0 model of the
best row is exported as a SavedModel and reloaded in a fresh process to
show that it serves. The runs go to worker processes running TensorFlow
single-threaded (see `train_all`); `s/epoch` is the median wall time of an
epoch (40 steps) in such a worker.

Modules: `models` (data, models, widths, rows), `training` (recipe, one
run), `workers` (every run, in worker processes), `stats` (Welch's test,
verdicts), `report` (table, curves, JSON, Markdown), `serving` (SavedModel
and portable exports), `main` (`run`).
"""

from tfkaf.demo.main import run
from tfkaf.demo.models import ARCHITECTURES
from tfkaf.demo.models import build_model
from tfkaf.demo.models import Config
from tfkaf.demo.models import configs
from tfkaf.demo.models import load_mnist1d
from tfkaf.demo.models import match_width
from tfkaf.demo.models import parameter_count
from tfkaf.demo.models import VARIANTS
from tfkaf.demo.report import plot_curves
from tfkaf.demo.report import results_json
from tfkaf.demo.report import table
from tfkaf.demo.report import verdict_lines
from tfkaf.demo.report import write_docs
from tfkaf.demo.serving import export_portable
from tfkaf.demo.serving import serve_in_fresh_process
from tfkaf.demo.stats import format_mean_std
from tfkaf.demo.stats import verdict
from tfkaf.demo.stats import VERDICT_ALPHA
from tfkaf.demo.stats import VERDICT_RULE
from tfkaf.demo.stats import welch_t_test
from tfkaf.demo.training import Recipe
from tfkaf.demo.training import RunResult
from tfkaf.demo.workers import train_all

__all__ = [
    "ARCHITECTURES",
    "Config",
    "Recipe",
    "RunResult",
    "VARIANTS",
    "VERDICT_ALPHA",
    "VERDICT_RULE",
    "build_model",
    "configs",
    "export_portable",
    "format_mean_std",
    "load_mnist1d",
    "match_width",
    "parameter_count",
    "plot_curves",
    "results_json",
    "run",
    "serve_in_fresh_process",
    "table",
    "train_all",
    "verdict",
    "verdict_lines",
    "welch_t_test",
    "write_docs",
]
