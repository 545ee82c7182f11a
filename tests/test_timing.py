"""The benchmark discipline of spmvtune.timing: interleaved rounds, batches,
settle pauses and the wake-up after them (no timing asserted)."""
import spmvtune.timing as T


def counting(log, name):
    def fn():
        log.append(name)
    return fn


def test_every_contestant_gets_one_sample_per_round_in_shuffled_order():
    log = []
    samples = T.interleaved_samples({n: counting(log, n) for n in "abc"}, repeats=6, warmup=1,
                                    batch_seconds=0.0)
    assert {n: len(s) for n, s in samples.items()} == {"a": 6, "b": 6, "c": 6}
    assert all(v >= 0 for s in samples.values() for v in s)
    rounds = log[6:]                           # warm-up and calibration: 2 calls each
    firsts = {rounds[i * 6] for i in range(6)}  # prime + 1 timed call per sample
    assert len(firsts) > 1                      # the order changes between rounds


def test_a_settled_contestant_pauses_and_the_next_one_is_woken_untimed(monkeypatch):
    slept, log = [], []
    monkeypatch.setattr(T.time, "sleep", lambda s: (slept.append(s), log.append("sleep")))
    monkeypatch.setattr(T, "WAKE_SECONDS", 0.002)
    T.interleaved_samples({"blas": counting(log, "blas"), "sparse": counting(log, "sparse")},
                          repeats=4, warmup=0, batch_seconds=0.0, settle={"blas": 0.25})
    assert slept == [0.25] * 4
    after = [log[i + 1:i + 4] for i, e in enumerate(log) if e == "sleep" and i + 3 < len(log)]
    # what follows a pause runs several untimed calls before its sample
    assert after and all(run == [run[0]] * 3 for run in after)


def test_without_prime_there_is_no_untimed_call():
    log = []
    T.interleaved_samples({"a": counting(log, "a")}, repeats=3, warmup=0, batch_seconds=0.0,
                          prime=False)
    assert len(log) == 1 + 3                    # calibration, then one call per sample
