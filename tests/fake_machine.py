"""A machine profile with made-up numbers, so no test depends on this machine's speed."""
from spmvtune.machine import MachineProfile


def fake_machine(bandwidth=30.0, incache=5.0):
    return MachineProfile(
        cpu_model="test CPU", cores=2, threads=2,
        caches={"L1d": 32 << 10, "L2": 1 << 20, "L3": 32 << 20},
        read_bandwidth={1: bandwidth / 2, 2: bandwidth},
        triad_bandwidth={1: bandwidth / 3, 2: bandwidth / 1.5},
        incache_csr_gflops={1: incache / 2, 2: incache},
        launch_overhead_us=2.0, measured_at="test")
