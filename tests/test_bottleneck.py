"""Bottleneck rules as pure functions of injected numbers (no timing)."""
import pytest

from spmvtune.bottleneck import HOLDS, holding, ramp, scores_from_features, scores_from_profile


def ev(bw=0.3, lat=0.0, imb=1.0):
    return {"bandwidth_share": bw, "latency_share": lat, "imbalance": imb}


def test_ramp():
    assert ramp(0.1, 0.2, 0.4) == 0.0 and ramp(0.5, 0.2, 0.4) == 1.0
    assert ramp(0.3, 0.2, 0.4) == pytest.approx(0.5)


@pytest.mark.parametrize("evidence,ws,lines,expected", [
    (ev(bw=0.95), 8.0, 0.1, ("MB",)),                  # streams at the bandwidth, out of cache
    (ev(bw=0.95), 0.5, 0.1, ("CMP",)),                 # same numbers in cache: not memory
    (ev(bw=0.2, lat=0.6), 8.0, 0.9, ("ML",)),          # regular x would make it 2.5x faster
    (ev(bw=0.2, lat=0.6), 8.0, 0.05, ()),              # ...but the structure is regular: noise
    (ev(bw=0.5, imb=2.0), 8.0, 0.1, ("IMB",)),         # one thread takes twice the mean
    (ev(bw=0.8, imb=1.8), 8.0, 0.1, ("IMB", "MB")),    # several at once, strongest first
    (ev(bw=1.0, imb=2.0), 8.0, 0.1, ("IMB", "MB")),    # a tie: imbalance first
    (ev(bw=0.4, lat=0.05, imb=1.05), 8.0, 0.9, ()),    # nothing stands out
    (ev(bw=0.6), 3.0, 0.08, ("MB",)),                  # busy machine, regular and far out of cache
    (ev(bw=0.6), 1.2, 0.08, ()),                       # ...but barely out of cache: not confirmed
    (ev(bw=0.25), 8.0, 0.08, ()),                      # too slow to be the bandwidth at all
    (ev(bw=0.2, lat=0.0, imb=1.0), 0.2, 0.1, ("CMP",)),  # small and regular: computation
])
def test_scores_from_profile(evidence, ws, lines, expected):
    s = scores_from_profile(evidence, {"ws_over_l3": ws, "x_lines_per_nnz": lines, "nnz": 1e6})
    assert set(s) == {"MB", "ML", "IMB", "CMP"}
    assert all(0.0 <= v <= 1.0 for v in s.values())
    assert holding(s) == expected


def feats(**kw):
    base = dict(x_over_l3=2.0, x_lines_per_nnz=0.125, ws_over_l3=4.0, max_row_share=0.0,
                row_cv=0.5, row_mean=20.0)
    base.update(kw)
    return base


@pytest.mark.parametrize("f,threads,expected", [
    (feats(), 2, ("MB",)),
    (feats(x_lines_per_nnz=0.9), 2, ("ML",)),
    (feats(max_row_share=0.6), 2, ("IMB", "MB")),
    (feats(max_row_share=0.6), 1, ("MB",)),            # one thread cannot be imbalanced
    (feats(ws_over_l3=0.1, x_over_l3=0.01, row_mean=1.5), 2, ("CMP",)),
])
def test_scores_from_features(f, threads, expected):
    assert holding(scores_from_features(f, threads)) == expected


def test_threshold_is_inclusive():
    assert holding({"MB": HOLDS, "ML": HOLDS - 1e-9, "IMB": 0, "CMP": 0}) == ("MB",)


def test_tiny_products_are_not_called_imbalanced():
    f = {"ws_over_l3": 0.001, "x_lines_per_nnz": 0.5, "nnz": 100}
    assert scores_from_profile(ev(imb=3.0), f)["IMB"] == 0.0
