/* ---- kernel: CSR row loops (csr_serial, csr_rows, csr_balanced, csr_unroll4,
   csr_prefetch, csr_vi, csr_vi_prefetch) ----
   SPMV_BALANCE      0: equal row blocks, 1: blocks of equal nonzero count
   SPMV_UNROLL       1 or 4 accumulators
   SPMV_PREFETCH     distance in nonzeros of the x prefetch (0: none)
   SPMV_VALUE_INDEX  0: values as stored; 1: SPMV_CODE codes into a table of distinct values
   SPMV_SERIAL       1: one thread, no OpenMP */
#ifndef SPMV_BALANCE
#define SPMV_BALANCE 1
#endif
#ifndef SPMV_UNROLL
#define SPMV_UNROLL 1
#endif
#ifndef SPMV_PREFETCH
#define SPMV_PREFETCH 0
#endif
#ifndef SPMV_VALUE_INDEX
#define SPMV_VALUE_INDEX 0
#endif
#ifndef SPMV_SERIAL
#define SPMV_SERIAL 0
#endif
#ifndef SPMV_CODE
#define SPMV_CODE uint16_t
#endif

struct SPMV_NAME(plan) {
    int64_t n_rows, n_cols, nnz;
    int nparts;
    int64_t *bounds;           /* (nparts + 1) row bounds */
    const spmv_idx *indptr;    /* the caller's arrays: they must outlive the plan */
    const spmv_idx *indices;
    const spmv_val *data;
#if SPMV_VALUE_INDEX
    SPMV_CODE *codes;          /* (nnz) index into table */
    spmv_val *table;             /* distinct values */
#endif
};

SPMV_NAME(plan) *SPMV_NAME(prepare)(int64_t n_rows, int64_t n_cols, const spmv_idx *indptr,
                                    const spmv_idx *indices, const spmv_val *data, int threads)
{
    SPMV_NAME(plan) *p = spmv_alloc(sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->n_rows = n_rows; p->n_cols = n_cols; p->nnz = indptr[n_rows];
    p->indptr = indptr; p->indices = indices; p->data = data;
    p->nparts = SPMV_SERIAL ? 1 : spmv_threads(threads);
    p->bounds = spmv_alloc(sizeof(int64_t) * (p->nparts + 1));
    if (!p->bounds) { free(p); return NULL; }
    spmv_row_partition(n_rows, indptr, p->nparts, SPMV_BALANCE, p->bounds);
#if SPMV_VALUE_INDEX
    if (!spmv_value_index(data, p->nnz, &p->codes, &p->table)) {
        free(p->bounds); free(p); return NULL;
    }
#endif
    spmv_error_buf[0] = 0;
    return p;
}

static void SPMV_NAME(rows)(const SPMV_NAME(plan) *p, int64_t r0, int64_t r1,
                            const spmv_val *restrict x, spmv_val *restrict y)
{
    const spmv_idx *restrict indptr = p->indptr;
    const spmv_idx *restrict col = p->indices;
    for (int64_t i = r0; i < r1; i++) {
        int64_t k = indptr[i], end = indptr[i + 1];
#if SPMV_UNROLL == 4
        spmv_val s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (; k + 4 <= end; k += 4) {
#if SPMV_PREFETCH
            if (k + SPMV_PREFETCH + 3 < p->nnz) {
                __builtin_prefetch(&x[col[k + SPMV_PREFETCH]]);
                __builtin_prefetch(&x[col[k + SPMV_PREFETCH + 1]]);
                __builtin_prefetch(&x[col[k + SPMV_PREFETCH + 2]]);
                __builtin_prefetch(&x[col[k + SPMV_PREFETCH + 3]]);
            }
#endif
            s0 += SPMV_VAL(p, k) * x[col[k]];
            s1 += SPMV_VAL(p, k + 1) * x[col[k + 1]];
            s2 += SPMV_VAL(p, k + 2) * x[col[k + 2]];
            s3 += SPMV_VAL(p, k + 3) * x[col[k + 3]];
        }
        for (; k < end; k++) s0 += SPMV_VAL(p, k) * x[col[k]];
        y[i] = (s0 + s1) + (s2 + s3);
#else
        spmv_val s = 0;
        for (; k < end; k++) {
#if SPMV_PREFETCH
            if (k + SPMV_PREFETCH < p->nnz) __builtin_prefetch(&x[col[k + SPMV_PREFETCH]]);
#endif
            s += SPMV_VAL(p, k) * x[col[k]];
        }
        y[i] = s;
#endif
    }
}

void SPMV_NAME(run)(const SPMV_NAME(plan) *p, const spmv_val *x, spmv_val *y)
{
#if SPMV_SERIAL
    SPMV_NAME(rows)(p, 0, p->n_rows, x, y);
#else
    #pragma omp parallel for schedule(static, 1) num_threads(p->nparts)
    for (int t = 0; t < p->nparts; t++)
        SPMV_NAME(rows)(p, p->bounds[t], p->bounds[t + 1], x, y);
#endif
}

void SPMV_NAME(free)(SPMV_NAME(plan) *p)
{
    if (!p) return;
#if SPMV_VALUE_INDEX
    free(p->codes); free(p->table);
#endif
    free(p->bounds);
    free(p);
}
