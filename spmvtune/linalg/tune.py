"""Kernel selection inside a solve: start on the baseline, tune when it pays.

A solver does not know how many products it will run: ``maxiter`` (10 n by
default) is a bound, not an estimate.  A selection spends features, a few
candidates' setup and timing (``benchmarks/solvers.py`` prints what it cost),
which a solve of a few dozen iterations never earns back.  So:

1. The solve starts at once on the baseline (``csr_balanced``; one thread for
   small matrices), prepared in a few products' time; its first products
   alternate with the unrolled loop (``csr_unroll4``) on the same arrays and
   the faster is kept (:meth:`~spmvtune.linalg._setup.Product.race`).
2. After each iteration the tuner extrapolates the residual history to the
   products still needed, at the rate of the last half of the solve so far
   (:class:`History`), capped by what ``maxiter`` leaves (a solve that shows
   no progress over a few hundred products is assumed to run to ``maxiter``).
3. When that estimate, checked twice, is large enough that selection's
   fixed part is small beside it (:func:`worth_tuning`: at least 100
   products and twice ``SELECT_SECONDS``), and the solve has already run as
   long as the selection may take (so a solve that ends or breaks down right
   after costs at most twice its time, the ski-rental bound), it calls
   :func:`spmvtune.select_kernel` once with ``expected_calls`` = the estimate
   (so selection spends only what the rest of the solve can repay, and the
   tuning cache serves later solves of the same matrix) and swaps the
   operator in.
4. The next few products with the new kernel are timed inside the solve; if
   they are not faster than the baseline's were, the baseline comes back.
"""
import bisect
import math
import time
import warnings

import numpy as np

from ..select import select_kernel
from ._fused import unrolled_sibling

#: What selection is assumed to cost, at most: ``SELECT_SECONDS +
#: SELECT_PRODUCTS`` products of the running kernel.  ``select_kernel`` given
#: ``expected_calls`` spends only what those calls can repay (the features
#: pass when it costs under a third of the predicted saving, candidates timed
#: only when their setup and timing are repaid), so a selection that finds
#: nothing to gain costs about its fixed part: Python work of a few
#: milliseconds and the features (~2 products on large matrices).  Measured
#: cold (``mode="auto"``; benchmarks/solvers.py prints it): ~30 products on
#: the 7M-nonzero Poisson matrix.
SELECT_SECONDS = 0.005
SELECT_PRODUCTS = 30
#: Tuning starts when the products estimated to remain are at least
#: MIN_TUNE_PRODUCTS and would take MARGIN times the selection's fixed part:
#: what selection then spends is bounded by what they can repay.
MIN_TUNE_PRODUCTS = 100
MARGIN = 2.0
#: Products on the baseline before the first estimate (the first iterations'
#: rate says little), and the estimate must hold again after this factor more
#: products before selection starts.
FIRST_ESTIMATE = 20
CONFIRM_AFTER = 1.25
#: A solve showing no progress over the last half of this many products is
#: assumed to run to ``maxiter``.
STALL_PRODUCTS = 200
#: The residual history keeps an entry each time the products grow by this factor.
HISTORY_STEP = 1.1
#: Use the tuning cache (:mod:`spmvtune.tuning_cache`) for in-solve
#: selections; benchmarks set it False to measure a cold selection.
USE_CACHE = True
#: Products with a new kernel timed before it is kept or dropped.
VERIFY_PRODUCTS = 6
#: The new kernel is kept when its median product is at most this fraction of
#: the baseline's.
KEEP_BELOW = 0.98


class Tuner:
    """In-solve selection for one matrix (see the module docstring).

    csr: the canonical matrix; threads: the caller's thread limit;
    max_products: products ``maxiter`` allows; cache: use the tuning cache
    (default :data:`USE_CACHE`).
    After the solve: ``events`` lists what happened (for the CLI and tests).
    """

    def __init__(self, csr, threads, max_products, cache=None):
        self.csr = csr
        self.threads = threads
        self.max_products = max_products
        self.cache = USE_CACHE if cache is None else cache
        self.history = History()
        self.state = "baseline"       # -> "verify" -> "done"
        self.events = []
        self.baseline = None
        self.candidate = None
        self.estimate = None
        self._next_check = FIRST_ESTIMATE
        self._confirmed = False

    def start(self, product):
        """Give ``product`` the baseline the solve begins with: csr_balanced,
        raced in the first products against the unrolled loop on the same
        arrays (short rows make the plain loop latency-bound)."""
        self.t_start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = select_kernel(self.csr, threads=self.threads, expected_calls=1, cache=False)
        sibling = unrolled_sibling(base)
        self.baseline = base
        if sibling is None:
            product.swap(base)
        else:
            product.race([base, sibling])

    def checkpoint(self, product, residual, target):
        """Called after each iteration with the residual norm and its target."""
        if self.state == "done":
            return
        if self.state == "verify":
            self._verify(product)
            return
        calls = product.calls
        self.history.record(calls, residual)
        if product.racing or calls < self._next_check:
            return
        self.baseline = product.op          # the race's winner
        t_prod = product.seconds_per_product
        if t_prod <= 0:
            return
        need = worth_tuning(t_prod)
        left = self.max_products - calls
        if left < need:
            self.state = "done"       # maxiter alone rules it out
            return
        if time.perf_counter() - self.t_start < selection_seconds(t_prod):
            return                    # the solve has not yet run as long as selection costs
        est = self.history.remaining(target)
        if est is None:               # no progress lately: it may run to maxiter
            est = left if calls >= STALL_PRODUCTS else 0
        est = min(est, left)
        self.estimate = est
        if est < need:
            self._confirmed = False
            self._next_check = calls + 1
        elif not self._confirmed:     # once more, a little later
            self._confirmed = True
            self._next_check = int(calls * CONFIRM_AFTER) + 1
        else:
            self._tune(product, int(est))

    def _tune(self, product, expected):
        base_times = product.recent_times()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            op = select_kernel(self.csr, threads=self.threads, expected_calls=expected,
                               cache=self.cache)
        self.events.append(f"selected {op.kernel} ({op.threads} threads) for ~{expected} "
                           f"products in {op.selection_seconds + op.setup_seconds:.2f} s")
        if op.kernel == self.baseline.kernel and op.threads == self.baseline.threads:
            self.state = "done"
            return
        self.candidate = op
        self._base_median = float(np.median(base_times)) if len(base_times) else None
        product.swap(op)
        self.state = "verify"

    def _verify(self, product):
        times = product.recent_times()
        if len(times) < VERIFY_PRODUCTS:
            return
        self.state = "done"
        if self._base_median is None:
            return
        new = float(np.median(times))
        if new > KEEP_BELOW * self._base_median:
            product.swap(self.baseline)
            self.events.append(f"kept {self.baseline.kernel}: {self.candidate.kernel} ran "
                               f"{new * 1e3:.3g} ms per product in the solve against "
                               f"{self._base_median * 1e3:.3g} ms")
        else:
            self.events.append(f"kept {self.candidate.kernel}: {new * 1e3:.3g} ms per product "
                               f"against {self._base_median * 1e3:.3g} ms")


def selection_seconds(t_prod):
    """What a selection is assumed to cost when a product takes ``t_prod`` s."""
    return SELECT_SECONDS + SELECT_PRODUCTS * t_prod


def worth_tuning(t_prod):
    """Products that must remain before a selection is made, when a product
    takes ``t_prod`` seconds: enough that the selection's fixed part is a
    small share of them (what it spends beyond that, it sizes to them)."""
    if t_prod <= 0:
        return math.inf
    return max(MIN_TUNE_PRODUCTS, MARGIN * SELECT_SECONDS / t_prod)


class History:
    """The lowest residual norm so far against products, kept at log-spaced
    product counts (a few dozen entries however long the solve)."""

    def __init__(self):
        self.calls = []
        self.logres = []

    def record(self, calls, residual):
        """The lowest residual so far counts: BiCGSTAB's and CG's residuals
        oscillate, their best one keeps falling while the solve progresses."""
        if not (residual > 0 and math.isfinite(residual)):
            return
        lr = math.log(residual)
        if self.calls:
            lr = min(lr, self.last[1])
        self.last = (calls, lr)
        if not self.calls or calls >= HISTORY_STEP * self.calls[-1] or calls == 0:
            self.calls.append(calls)
            self.logres.append(lr)

    def remaining(self, target):
        """Products still needed to reach ``target`` at the rate of the last
        half of the solve (CG and BiCGSTAB speed up as they go; the rate from
        the start would overestimate), or None without progress to
        extrapolate."""
        if not self.calls or target <= 0:
            return None
        calls, now = self.last
        j = bisect.bisect_left(self.calls, calls / 2)
        j = min(j, len(self.calls) - 1)
        span = calls - self.calls[j]
        gained = self.logres[j] - now
        if span <= 0 or gained <= 0:
            return None
        return max(0.0, (now - math.log(target)) * span / gained)
