"""select_kernel's modes, expected_calls, the tuning cache and the LinearOperator."""
import multiprocessing
import sqlite3
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from scipy.sparse.linalg import cg

import spmvtune
from spmvtune import generate
from spmvtune.cli import main
from spmvtune.tuning_cache import TuningCache, matrix_fingerprint
from spmvtune.validate import as_canonical_csr
from conftest import family_matrix
from reference import assert_matches


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPMVTUNE_CACHE_DIR", str(tmp_path))
    return TuningCache()


@pytest.mark.parametrize("mode", ["auto", "predicted", "features", "profile", "exhaustive"])
@pytest.mark.parametrize("family", ["power_law", "stencil", "blocks", "short_rows", "empty_0x5"])
def test_modes_choose_a_correct_kernel(mode, family, cache):
    A = family_matrix(family)
    op = spmvtune.select_kernel(A, mode=mode, threads=2)
    assert op.kernel in spmvtune.kernel_names()
    assert op.selection_source.startswith(mode)
    assert op.selection_seconds > 0 and op.break_even_calls is not None
    assert op.decision.kernel == op.kernel and op.decision.threads == op.threads
    assert 1 <= op.threads <= 2
    x = np.random.default_rng(0).uniform(-1, 1, A.shape[1])
    assert_matches(op(x), A, x, f"{mode}/{family}")


def test_cache_makes_the_second_call_free(cache):
    A = generate.fem_blocks(3000, 8)
    first = spmvtune.select_kernel(A, threads=2)
    assert first.selection_source != "cache" and cache.info()["entries"] == 1
    second = spmvtune.select_kernel(A.copy(), threads=2)
    assert second.selection_source == "cache" and second.kernel == first.kernel
    other_threads = spmvtune.select_kernel(A, threads=1)
    assert other_threads.selection_source != "cache"
    uncached = spmvtune.select_kernel(A, threads=2, cache=False)
    assert uncached.selection_source != "cache"


def test_fingerprint_sees_values_and_structure():
    A = family_matrix("banded")
    B = A.copy()
    B.data[len(B.data) // 2] += 1.0
    C = sp.csr_array(A[:, ::-1])
    keys = {matrix_fingerprint(as_canonical_csr(M)) for M in (A, B, C)}
    assert len(keys) == 3
    assert matrix_fingerprint(as_canonical_csr(A.copy())) == matrix_fingerprint(as_canonical_csr(A))


def test_corrupt_or_foreign_cache_is_rebuilt(cache):
    cache.path.parent.mkdir(parents=True, exist_ok=True)
    cache.path.write_bytes(b"this is not a database" * 100)
    A = family_matrix("random")
    with pytest.warns(UserWarning, match="rebuilding"):
        spmvtune.select_kernel(A, threads=2)
    assert cache.info()["entries"] == 1
    con = sqlite3.connect(cache.path)
    con.execute("UPDATE meta SET v = '999' WHERE k = 'schema'")
    con.commit()
    con.close()
    with pytest.warns(UserWarning, match="corrupt or foreign"):
        spmvtune.select_kernel(A, threads=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert spmvtune.select_kernel(A, threads=2).selection_source == "cache"


def _writer(path, start):
    c = TuningCache(path)
    for i in range(start, start + 40):
        c.put(f"k{i}", {"kernel": "csr_balanced", "i": i})
        assert c.get(f"k{i}")["i"] == i


def test_several_processes_share_the_cache(cache):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(cache.path, 100 * p)) for p in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert cache.info()["entries"] == 160


def test_few_expected_calls_skip_selection(cache):
    A = generate.fem_blocks(3000, 8)
    op = spmvtune.select_kernel(A, expected_calls=5, threads=2)
    assert op.kernel == "csr_balanced" and "no selection" in op.selection_source
    assert op.break_even_calls == 0.0


def test_a_setup_the_calls_cannot_repay_is_not_made(cache, monkeypatch):
    """With few expected calls, a kernel whose setup costs more than it saves
    is replaced by the baseline."""
    from spmvtune import select
    from spmvtune.decision import Decision
    A = generate.fem_blocks(3000, 8)
    slow_setup = Decision("bcsr", 2, predicted_speedup=1.01, predicted_seconds=1e-4,
                          source="auto (predicted)")
    monkeypatch.setattr(select._Selection, "_auto", lambda self: slow_setup)
    few = spmvtune.select_kernel(A, expected_calls=20, threads=2, cache=False)
    assert few.kernel == "csr_balanced" and "cannot repay" in few.selection_source
    many = spmvtune.select_kernel(A, expected_calls=10**7, threads=2, cache=False)
    assert many.kernel == "bcsr"


def test_linear_operator_in_cg(cache):
    A = generate.laplacian_2d(40)
    b = np.ones(A.shape[0])
    op = spmvtune.select_kernel(A, threads=2)
    x, info = cg(op.as_linear_operator(), b, rtol=1e-10, maxiter=2000)
    ref, info_ref = cg(A, b, rtol=1e-10, maxiter=2000)
    assert info == 0 and info_ref == 0
    np.testing.assert_allclose(x, ref, rtol=1e-7, atol=1e-9)
    col = op.as_linear_operator().matvec(np.ones((A.shape[1], 1)))
    assert col.shape == (A.shape[0], 1)


def test_bad_selection_arguments():
    A = family_matrix("random")
    with pytest.raises(ValueError, match="mode"):
        spmvtune.select_kernel(A, mode="fast")
    with pytest.raises(ValueError, match="expected_calls"):
        spmvtune.select_kernel(A, expected_calls=0)
    with pytest.raises(ValueError, match="forced kernel"):
        spmvtune.select_kernel(A, options={"distance": 3})


def test_bad_budget_arguments():
    A = family_matrix("random")
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_extra_bytes"):
            spmvtune.select_kernel(A, max_extra_bytes=bad)


@pytest.mark.parametrize("mode", ["auto", "predicted", "exhaustive"])
def test_memory_budget_leaves_out_kernels_that_copy(mode, cache):
    """max_extra_bytes=0 leaves only kernels that run on the caller's arrays."""
    A = generate.stencil3d(12)                   # bcsr_vi, csr_sym, ... would copy
    op = spmvtune.select_kernel(A, threads=2, mode=mode, max_extra_bytes=0, cache=False)
    assert spmvtune.pool.get_kernel(op.kernel).shares_input, op.kernel
    assert op.nbytes == A.data.nbytes + A.indices.nbytes + A.indptr.nbytes
    assert op._args[2].base is not None           # a view, not a copy
    x = np.ones(A.shape[1])
    assert_matches(op(x), A, x, f"{mode}, no extra memory")


def test_memory_budget_is_part_of_the_cache_key(cache):
    A = generate.stencil3d(10)
    spmvtune.select_kernel(A, threads=2, max_extra_bytes=0)
    op = spmvtune.select_kernel(A, threads=2, max_extra_bytes=10**9)
    assert op.selection_source != "cache"


def test_invalid_cached_decisions_are_dropped_and_made_again(cache):
    from spmvtune.tuning_cache import decision_key
    A = family_matrix("random")
    key = decision_key(as_canonical_csr(A), 2, "auto")
    for bad in ({"kernel": "csr_balanced", "threads": 0}, {"kernel": "no_such_kernel", "threads": 1},
                {"kernel": "csr_prefetch", "threads": 1, "options": [["bogus", 1]]},
                {"kernel": "csr_balanced", "threads": 1, "predicted_speedup": -3},
                ["not", "a", "decision"]):
        cache.put(key, bad)
        with pytest.warns(UserWarning, match="dropping an invalid decision"):
            op = spmvtune.select_kernel(A, threads=2)
        assert op.selection_source != "cache" and op.threads >= 1
        x = np.ones(A.shape[1])
        assert_matches(op(x), A, x, "recomputed")
        assert spmvtune.select_kernel(A, threads=2).selection_source == "cache"


def test_forced_kernel_reports_no_prediction():
    op = spmvtune.select_kernel(family_matrix("random"), kernel="csr_prefetch", threads=2)
    assert op.selection_source == "forced" and op.predicted_speedup is None


def test_cache_cli(cache):
    spmvtune.select_kernel(family_matrix("random"), threads=2)
    r = CliRunner().invoke(main, ["cache", "info", "--json"])
    assert r.exit_code == 0, r.output
    assert '"entries": 1' in r.output
    r = CliRunner().invoke(main, ["cache", "clear"])
    assert r.exit_code == 0 and "cleared" in r.output
    assert cache.info()["entries"] == 0


def test_auto_times_only_the_pairs_the_model_cannot_separate():
    """plan_check on injected predictions: pairs within the margin of the best,
    plus the baseline, and nothing when the check would cost more than it can gain."""
    from spmvtune.select import MARGIN, MAX_TIMED, plan_check
    setup = {"csr_balanced": 0.0, "bcsr": 2e-3, "csr_sym": 1e-3, "csr_vi": 1e-3}.get
    ranked = [(1.00e-3, "bcsr", 2), (1.05e-3, "csr_sym", 2), (1.60e-3, "csr_vi", 2),
              (2.00e-3, "csr_balanced", 2), (3.5e-3, "csr_balanced", 1)]
    no_error = lambda k, t: 0.0                                  # noqa: E731
    assert plan_check(ranked, 2e-3, 1000, setup, no_error) == [("bcsr", 2), ("csr_sym", 2),
                                                                ("csr_balanced", 2)]
    # a model that says it is 60% off widens the margin
    assert ("csr_vi", 2) in plan_check(ranked, 2e-3, 1000, setup, lambda k, t: 0.6)
    assert len(plan_check(ranked, 2e-3, 1000, setup, lambda k, t: 5.0)) == MAX_TIMED + 1
    # too few calls to repay preparing and timing the candidates: trust the prediction
    assert plan_check(ranked, 2e-3, 5, setup, no_error) == []
    # a clear winner that is the baseline: nothing to time
    clear = [(1e-3, "csr_balanced", 2), (2e-3, "bcsr", 2)]
    assert plan_check(clear, 1e-3, 1000, setup, no_error) == []
    assert MARGIN > 0


def test_thread_count_is_chosen_per_matrix(cache):
    """No fixed nonzero cutoff: a tiny matrix runs on one thread (the launch
    costs more than it saves), a large balanced one on two."""
    tiny = spmvtune.select_kernel(family_matrix("diagonal"), threads=2, cache=False)
    assert tiny.threads == 1
    big = generate.banded(400_000, 4)                        # 3.6M nonzeros
    op = spmvtune.select_kernel(big, threads=2, mode="predicted", cache=False)
    assert op.threads == 2


def test_a_cached_decision_that_cannot_be_prepared_is_made_again(cache):
    from spmvtune.tuning_cache import decision_key
    A = family_matrix("random")
    key = decision_key(as_canonical_csr(A), 2, "auto")
    cache.put(key, {"kernel": "csr_prefetch", "threads": 2, "options": [["distance", 10**6]]})
    with pytest.warns(UserWarning, match="cannot be prepared"):
        op = spmvtune.select_kernel(A, threads=2)
    x = np.ones(A.shape[1])
    assert_matches(op(x), A, x, "remade")
    assert spmvtune.select_kernel(A, threads=2).selection_source == "cache"


def test_the_check_fits_its_budget_of_baseline_products():
    """On a large matrix (products of milliseconds) the check takes the
    baseline, then the candidates in ranked order while setup and timing stay
    within CHECK_BUDGET_PRODUCTS baseline products."""
    from spmvtune.select import (CHECK_BUDGET_PRODUCTS, CHECK_ROUNDS_LONG, check_cost,
                                 long_products, plan_check)
    t_base = 10e-3
    ranked = [(5e-3, "bcsr_vi", 2), (5.2e-3, "csr_sym", 2), (5.3e-3, "csr_vi", 2),
              (t_base, "csr_balanced", 2)]
    cheap = {"csr_balanced": 0.0, "bcsr_vi": 6 * t_base, "csr_sym": 8 * t_base,
             "csr_vi": 2 * t_base}
    timed = plan_check(ranked, t_base, 10**6, cheap.get, lambda k, t: 0.0)
    assert long_products({(k, t): p for p, k, t in ranked}, timed)
    assert check_cost(5e-3, True) == (1 + CHECK_ROUNDS_LONG) * 5e-3
    cost = sum(cheap[k] + check_cost(p, True) for p, k, t in ranked if (k, t) in timed)
    assert ("csr_balanced", 2) in timed and cost <= CHECK_BUDGET_PRODUCTS * t_base
    assert timed[0] == ("bcsr_vi", 2)                   # ranked order kept
    # setups the budget cannot hold are left out, the baseline stays
    dear = dict(cheap, csr_sym=40 * t_base)
    timed = plan_check(ranked, t_base, 10**6, dear.get, lambda k, t: 0.0)
    assert ("csr_sym", 2) not in timed and ("csr_balanced", 2) in timed


def test_the_other_selectors_picks_are_timed_first():
    """``also`` (the forest's pick) joins the check even when it is predicted
    outside the margin, ahead of the near pairs; shorter products get the
    larger budget."""
    from spmvtune.select import CHECK_BUDGET_SHORT_PRODUCTS, check_cost, plan_check
    t_base = 100e-6
    ranked = [(60e-6, "csr_split", 2), (62e-6, "csr_delta", 2), (63e-6, "csr_vi", 2),
              (90e-6, "csr_unroll4", 2), (t_base, "csr_balanced", 2)]
    free = lambda k: 0.0                                        # noqa: E731
    timed = plan_check(ranked, t_base, 10**6, free, lambda k, t: 0.0, also=[("csr_unroll4", 2)])
    assert timed[:2] == [("csr_unroll4", 2), ("csr_split", 2)]
    assert ("csr_balanced", 2) in timed
    cost = sum(check_cost(p, False) for p, k, t in ranked if (k, t) in timed)
    assert cost <= CHECK_BUDGET_SHORT_PRODUCTS * t_base
    assert plan_check(ranked, t_base, 10**6, free, lambda k, t: 0.0)[:2] == [("csr_split", 2),
                                                                           ("csr_delta", 2)]


def test_a_pair_both_selectors_prefer_is_timed_when_only_its_setup_is_over_budget():
    """``agreed`` (the cost model's best, named by the forest too) joins the
    check although its setup does not fit the budget, when its predicted gain
    repays setup and timing within the horizon; not when its timing alone
    does not fit, and not when the gain would not repay it."""
    from spmvtune.select import CHECK_BUDGET_SHORT_PRODUCTS, check_cost, plan_check
    t_base = 700e-6
    ranked = [(500e-6, "dense_gemv", 2), (600e-6, "csr_delta", 2), (t_base, "csr_balanced", 2)]
    setup = {"dense_gemv": 25 * t_base, "csr_delta": 2 * t_base, "csr_balanced": 0.0}.get
    none = lambda k, t: 0.0                                     # noqa: E731
    also = [("csr_delta", 2), ("dense_gemv", 2)]
    assert ("dense_gemv", 2) not in plan_check(ranked, t_base, 1000, setup, none, also=also)
    timed = plan_check(ranked, t_base, 1000, setup, none, also=also, agreed=("dense_gemv", 2))
    assert set(timed) == {("dense_gemv", 2), ("csr_delta", 2), ("csr_balanced", 2)}
    within = sum(setup(k) + check_cost(p, False) for p, k, _ in ranked[1:])
    assert within <= CHECK_BUDGET_SHORT_PRODUCTS * t_base
    # a horizon too short to repay the densifying leaves it out
    assert ("dense_gemv", 2) not in plan_check(ranked, t_base, 100, setup, none, also=also,
                                               agreed=("dense_gemv", 2))
    # timing that alone overflows the budget is not excused
    slow = [(p * 10, k, t) for p, k, t in ranked]
    big = {"dense_gemv": 0.0, "csr_delta": 0.0, "csr_balanced": 0.0}.get
    timed = plan_check(slow, 10 * t_base, 10**6, big, none, also=also, agreed=("dense_gemv", 2))
    cost = sum(check_cost(p, True) for p, k, t in slow if (k, t) in timed)
    assert cost <= 24 * 10 * t_base


def test_the_check_times_blas_products_last_without_pausing(monkeypatch):
    """The dense fallback's BLAS threads spin after a call: the check times it
    after the sparse pairs instead of pausing after each of its samples."""
    import time as _time
    import spmvtune.select as S
    from spmvtune.validate import as_canonical_csr
    A = family_matrix("dense_small")
    sel = S._Selection(as_canonical_csr(A), 2, None, None, False)
    order = []
    real = S.build_operator

    def recording(csr, kernel, threads, *a):
        op = real(csr, kernel, threads, *a)
        run = op.matvec
        op.matvec = lambda x, out=None: (order.append(kernel), run(x, out=out))[1]
        return op
    monkeypatch.setattr(S, "build_operator", recording)
    monkeypatch.setattr(_time, "sleep", lambda s: pytest.fail("the check paused"))
    pairs = [("dense_gemv", 2), ("csr_balanced", 2), ("csr_unroll4", 1)]
    measured = sel.time_pairs(pairs, {p: 1e-5 for p in pairs})
    assert set(measured) == set(pairs) and all(v > 0 for v in measured.values())
    first_dense = order.index("dense_gemv")
    assert set(order[first_dense:]) == {"dense_gemv"}


def test_auto_takes_the_forests_pick_when_a_check_would_not_be_repaid(monkeypatch):
    """Too few calls to repay timing: the forest's pick (a usable pair) is taken."""
    import spmvtune.select as S
    A = family_matrix("random")
    monkeypatch.setattr(S._Selection, "forest_pairs",
                        lambda self, f, predicted: [("csr_unroll4", 1), ("csr_balanced", 2)])
    monkeypatch.setattr(S, "plan_check", lambda *a, **k: [])
    op = spmvtune.select_kernel(A, threads=2, cache=False)
    assert (op.kernel, op.threads) == ("csr_unroll4", 1)
    assert "forest" in op.selection_source
    x = np.ones(A.shape[1])
    assert_matches(op(x), A, x, "forest pick")


def test_repaid_weighs_the_measured_gain_over_the_horizon():
    from spmvtune.select import repaid
    assert repaid(spent=1e-3, base_seconds=10e-6, seconds=8e-6, horizon=1000)      # 2 ms saved
    assert not repaid(spent=3e-3, base_seconds=10e-6, seconds=8e-6, horizon=1000)
    assert repaid(spent=3e-3, base_seconds=10e-6, seconds=8e-6, horizon=10_000)
    assert not repaid(spent=0.0 + 1e-9, base_seconds=8e-6, seconds=9e-6, horizon=10**6)  # slower


@pytest.mark.parametrize("gain,horizon,expected", [(1.02, 1000, "csr_balanced"),
                                                   (1.02, 10**7, "csr_unroll4"),
                                                   (3.0, 1000, "csr_unroll4")])
def test_a_measured_gain_that_would_not_repay_the_selection_keeps_the_baseline(
        monkeypatch, gain, horizon, expected):
    """The check's winner is taken only when its measured gain over the baseline
    repays the selection within the expected calls (a few percent are also
    what the short check cannot tell from noise)."""
    import spmvtune.select as S
    A = family_matrix("random")
    monkeypatch.setattr(S, "plan_check", lambda *a, **k: [("csr_balanced", 2), ("csr_unroll4", 2)])

    def fake_timing(self, pairs, predicted=None):
        for p in pairs:
            self.ops[p] = S.build_operator(self.csr, *p, None, False)
        return {("csr_balanced", 2): 1e-4, ("csr_unroll4", 2): 1e-4 / gain}
    monkeypatch.setattr(S._Selection, "time_pairs", fake_timing)
    op = spmvtune.select_kernel(A, threads=2, cache=False, expected_calls=horizon)
    assert op.kernel == expected, op.selection_source
    if expected == "csr_balanced":
        assert "would not repay" in op.selection_source


def test_the_forest_pairs_are_ranked_pairs_or_none():
    import spmvtune.select as S
    A = as_canonical_csr(family_matrix("banded"))
    sel = S._Selection(A, 2, None, None, False)
    f = sel.features()
    predicted = {(k, t): p for p, k, t in sel.ranked(f)}
    first = sel.forest_pairs(f, predicted, 1)
    pair = first[0] if first else None
    assert pair is None or pair in predicted
    assert sel.forest_pairs(f, {}, 1) == []
    pairs = sel.forest_pairs(f, predicted)
    assert len(pairs) <= S.FOREST_CANDIDATES and len(set(pairs)) == len(pairs)
    assert all(p in predicted for p in pairs) and pairs[:1] == ([pair] if pair else [])


def test_out_of_cache_the_smallest_format_is_a_candidate():
    from spmvtune.select import fewest_bytes_pair
    caches = {"L2": 1 << 20, "L3": 32 << 20}
    f = {"csr_bytes": 300e6, "nnz": 25e6, "rows": 1e6, "cols": 1e6, "value_bytes": 8.0,
         "distinct_values": 2.0, "bcsr_bytes": 120e6, "bcsr_fill": 1.0}
    ranked = [(1.0, "csr_unroll4", 2), (1.1, "bcsr", 2), (1.2, "bcsr", 1),
              (1.3, "csr_balanced", 2)]
    assert fewest_bytes_pair(f, ranked, caches) == ("bcsr", 2)
    assert fewest_bytes_pair(dict(f, csr_bytes=1e6), ranked, caches) is None   # in cache
    assert fewest_bytes_pair(f, [], caches) is None


def test_the_dense_fallback_is_kept_unless_a_sparse_pair_clearly_beats_it():
    from spmvtune.select import DENSE_MARGIN, steady_pick
    t = 1e-3
    close = {("csr_delta", 2): t, ("dense_gemv", 2): t * (1 + DENSE_MARGIN / 2),
             ("csr_balanced", 2): 2 * t}
    assert steady_pick(close)[0] == ("dense_gemv", 2)
    clear = {**close, ("dense_gemv", 2): t * (1 + 2 * DENSE_MARGIN)}
    assert steady_pick(clear)[0] == ("csr_delta", 2)
    assert steady_pick({("csr_delta", 2): t, ("csr_balanced", 2): t * 1.01})[0] == ("csr_delta", 2)
