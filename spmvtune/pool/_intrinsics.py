"""Low-level helpers for the Numba kernels.

``cycles()`` reads the CPU's cycle counter (``llvm.readcyclecounter``, RDTSC on
x86): the micro-profiler times each thread's partition with it.

``prefetch(arr, i)`` emits LLVM's ``llvm.prefetch`` for ``&arr[i]`` (read, high
temporal locality, data cache).  Numba has no public prefetch, so it is written
as an ``@intrinsic``; no bounds check or wraparound is generated, so callers
must keep ``i`` inside ``arr`` (the prefetch kernels pad their index arrays).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_I8P = ir.IntType(8).as_pointer()
_I32 = ir.IntType(32)


@intrinsic
def prefetch(typingctx, arr, idx):
    """Hint the CPU to load the cache line holding ``arr[idx]``."""
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]],
                                       wraparound=False)
        fnty = ir.FunctionType(ir.VoidType(), [_I8P, _I32, _I32, _I32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # rw=0 (read), locality=3 (keep in all levels), cache type=1 (data)
        builder.call(fn, [builder.bitcast(ptr, _I8P), _I32(0), _I32(3), _I32(1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


@intrinsic
def cycles(typingctx):
    """The CPU's time-stamp counter (uint64); only differences are meaningful."""
    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.uint64(), codegen
