"""Fixed-width SIMD vectors for the many-vector kernels (``Y = A X``).

Numba's loop vectorizer handles a loop over the k right-hand sides, but then
the partial sums live in ``Y`` (memory): every nonzero reloads and stores
them, behind a store-to-load dependency, and a runtime alias check runs on
every entry of the short inner loop.  Its SLP vectorizer, which would pack
scalar accumulators into registers, is off by default.  These intrinsics give
the kernels a value type of ``LANES`` numbers that LLVM keeps in vector
registers (``<8 x double>``: two AVX2 registers, one AVX-512 register), so a
row's partial sums stay in registers across its nonzeros:

- ``vzeros(a)``: a vector of zeros of ``a``'s dtype;
- ``vload(A, i, j)``: ``A[i, j:j+LANES]`` of a C-contiguous 2-D array;
- ``vload_part(A, i, j, n)``: the first ``n < LANES`` of them, other lanes 0;
- ``vstore(A, i, j, v)`` / ``vstore_part(A, i, j, n, v)``: the reverse;
- ``vfma(acc, a, v)``: ``acc + a * v`` for a scalar ``a`` (``llvm.fmuladd``:
  one fused multiply-add where the CPU has them);
- ``vadd(u, v)``.

Loads and stores are unaligned (element alignment) and unchecked: callers keep
the indices inside the array.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

#: Numbers per vector: one 64-byte cache line of float64.
LANES = 8
_I1, _I32, _I64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)


class VecType(types.Type):
    """``LANES`` numbers of ``dtype`` held in vector registers."""

    def __init__(self, dtype):
        self.dtype = dtype
        super().__init__(name=f"vec{LANES}({dtype})")


@register_model(VecType)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        be_type = ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), LANES)
        super().__init__(dmm, fe_type, be_type)


def _float_array(a, ndim=None):
    return (isinstance(a, types.Array) and isinstance(a.dtype, types.Float)
            and (ndim is None or a.ndim == ndim))


def _suffix(dtype):
    return f"v{LANES}f{dtype.bitwidth}"


def _item_pointer(context, builder, sig, args):
    """Pointer to ``A[i, j]`` (args: A, i, j, ...), no wraparound or bounds check."""
    aryty = sig.args[0]
    ary = context.make_array(aryty)(context, builder, args[0])
    idx = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:3], sig.args[1:3])]
    return cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)


def _splat(builder, vty, value):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), value, _I32(0))
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


def _mask(builder, n):
    """<LANES x i1>: lane l is set when l < n (n an i64)."""
    vty = ir.VectorType(_I64, LANES)
    lanes = ir.Constant(vty, list(range(LANES)))
    return builder.icmp_unsigned("<", lanes, _splat(builder, vty, n))


def _ok_index(*idx):
    return all(isinstance(i, types.Integer) for i in idx)


@intrinsic
def vzeros(typingctx, a):
    """Zeros of ``a``'s float dtype (``a``: an array or a vector)."""
    dtype = getattr(a, "dtype", None)
    if not isinstance(dtype, types.Float):
        return None
    vt = VecType(dtype)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vt), None)
    return vt(a), codegen


@intrinsic
def vload(typingctx, arr, i, j):
    """``arr[i, j:j + LANES]``."""
    if not (_float_array(arr, 2) and _ok_index(i, j)):
        return None
    vt = VecType(arr.dtype)

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig, args)
        vty = context.get_value_type(vt)
        return builder.load(builder.bitcast(ptr, vty.as_pointer()), align=arr.dtype.bitwidth // 8)
    return vt(arr, i, j), codegen


@intrinsic
def vload_part(typingctx, arr, i, j, n):
    """``arr[i, j:j + n]`` for ``n < LANES``; lanes from n on are 0."""
    if not (_float_array(arr, 2) and _ok_index(i, j, n)):
        return None
    vt = VecType(arr.dtype)

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig, args)
        vty = context.get_value_type(vt)
        count = context.cast(builder, args[3], sig.args[3], types.int64)
        fnty = ir.FunctionType(vty, [ptr.type, _I32, ir.VectorType(_I1, LANES), vty])
        fn = cgutils.get_or_insert_function(builder.module, fnty,
                                            f"llvm.masked.load.{_suffix(arr.dtype)}.p0")
        return builder.call(fn, [ptr, _I32(arr.dtype.bitwidth // 8), _mask(builder, count),
                                 ir.Constant(vty, None)])
    return vt(arr, i, j, n), codegen


@intrinsic
def vstore(typingctx, arr, i, j, v):
    """``arr[i, j:j + LANES] = v``."""
    if not (_float_array(arr, 2) and _ok_index(i, j) and isinstance(v, VecType)
            and v.dtype == arr.dtype):
        return None

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig, args)
        vty = context.get_value_type(sig.args[3])
        builder.store(args[3], builder.bitcast(ptr, vty.as_pointer()),
                      align=arr.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.void(arr, i, j, v), codegen


@intrinsic
def vstore_part(typingctx, arr, i, j, n, v):
    """``arr[i, j:j + n] = v[:n]`` for ``n < LANES``."""
    if not (_float_array(arr, 2) and _ok_index(i, j, n) and isinstance(v, VecType)
            and v.dtype == arr.dtype):
        return None

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig, args)
        vty = context.get_value_type(sig.args[4])
        count = context.cast(builder, args[3], sig.args[3], types.int64)
        fnty = ir.FunctionType(ir.VoidType(), [vty, ptr.type, _I32, ir.VectorType(_I1, LANES)])
        fn = cgutils.get_or_insert_function(builder.module, fnty,
                                            f"llvm.masked.store.{_suffix(arr.dtype)}.p0")
        builder.call(fn, [args[4], ptr, _I32(arr.dtype.bitwidth // 8), _mask(builder, count)])
        return context.get_dummy_value()
    return types.void(arr, i, j, n, v), codegen


@intrinsic
def vfma(typingctx, acc, a, v):
    """``acc + a * v`` (``a`` a scalar, broadcast to every lane)."""
    if not (isinstance(acc, VecType) and acc == v and isinstance(a, (types.Float, types.Integer))):
        return None

    def codegen(context, builder, sig, args):
        vty = context.get_value_type(sig.args[0])
        scalar = context.cast(builder, args[1], sig.args[1], sig.args[0].dtype)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty] * 3),
                                            f"llvm.fmuladd.{_suffix(sig.args[0].dtype)}")
        return builder.call(fn, [_splat(builder, vty, scalar), args[2], args[0]])
    return acc(acc, a, v), codegen


@intrinsic
def vadd(typingctx, u, v):
    """``u + v``."""
    if not (isinstance(u, VecType) and u == v):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])
    return u(u, v), codegen
