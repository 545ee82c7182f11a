/* ---- kernel: column blocks (csr_colblock, csr_colblock_prefetch) ----
   Columns are cut into blocks of SPMV_BLOCK_COLS so that a block's slice of x
   stays in the last-level cache; y is swept once per block.
   SPMV_BLOCK_COLS  columns per block (8 MiB of x: 1 << 20)
   SPMV_PREFETCH    distance in nonzeros of the x prefetch within a block (0: none) */
#ifndef SPMV_BLOCK_COLS
#define SPMV_BLOCK_COLS (1 << 20)
#endif
#ifndef SPMV_PREFETCH
#define SPMV_PREFETCH 0
#endif

struct SPMV_NAME(plan) {
    int64_t n_rows, n_cols, nnz;
    int nparts, nblocks;
    int64_t *bounds;           /* row partitions, balanced on the whole matrix */
    int64_t *ptr;              /* (nblocks * (n_rows + 1)) row pointers per block */
    int64_t *col;              /* (nnz) columns, block after block */
    spmv_val *val;
};

SPMV_NAME(plan) *SPMV_NAME(prepare)(int64_t n_rows, int64_t n_cols, const spmv_idx *indptr,
                                    const spmv_idx *indices, const spmv_val *data, int threads)
{
    SPMV_NAME(plan) *p = spmv_alloc(sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->n_rows = n_rows; p->n_cols = n_cols; p->nnz = indptr[n_rows];
    p->nparts = spmv_threads(threads);
    p->nblocks = n_cols > 0 ? (int)((n_cols + SPMV_BLOCK_COLS - 1) / SPMV_BLOCK_COLS) : 1;
    int nb = p->nblocks;
    p->bounds = spmv_alloc(sizeof(int64_t) * (p->nparts + 1));
    p->ptr = spmv_alloc(sizeof(int64_t) * (size_t)nb * (size_t)(n_rows + 1));
    p->col = spmv_alloc(sizeof(int64_t) * (size_t)p->nnz);
    p->val = spmv_alloc(sizeof(spmv_val) * (size_t)p->nnz);
    if (!p->bounds || !p->ptr || !p->col || !p->val) { SPMV_NAME(free)(p); return NULL; }
    spmv_row_partition(n_rows, indptr, p->nparts, 1, p->bounds);
    /* count per (block, row), then fill block after block */
    memset(p->ptr, 0, sizeof(int64_t) * (size_t)nb * (size_t)(n_rows + 1));
    for (int64_t i = 0; i < n_rows; i++)
        for (int64_t k = indptr[i]; k < indptr[i + 1]; k++)
            p->ptr[(int64_t)(indices[k] / SPMV_BLOCK_COLS) * (n_rows + 1) + i + 1]++;
    int64_t run = 0;
    for (int b = 0; b < nb; b++) {
        int64_t *bp = p->ptr + (int64_t)b * (n_rows + 1);
        bp[0] = run;
        for (int64_t i = 0; i < n_rows; i++) { run += bp[i + 1]; bp[i + 1] = run; }
    }
    int64_t *fill = spmv_alloc(sizeof(int64_t) * (size_t)nb);
    if (!fill) { SPMV_NAME(free)(p); return NULL; }
    for (int64_t i = 0; i < n_rows; i++) {
        for (int b = 0; b < nb; b++) fill[b] = p->ptr[(int64_t)b * (n_rows + 1) + i];
        for (int64_t k = indptr[i]; k < indptr[i + 1]; k++) {
            int b = (int)(indices[k] / SPMV_BLOCK_COLS);
            p->col[fill[b]] = indices[k];
            p->val[fill[b]++] = data[k];
        }
    }
    free(fill);
    spmv_error_buf[0] = 0;
    return p;
}

void SPMV_NAME(run)(const SPMV_NAME(plan) *p, const spmv_val *restrict x, spmv_val *restrict y)
{
    const int64_t *restrict col = p->col;
    const spmv_val *restrict val = p->val;
    #pragma omp parallel num_threads(p->nparts)
    {
        int t = spmv_thread_num();
        if (t < p->nparts) {
            int64_t r0 = p->bounds[t], r1 = p->bounds[t + 1];
            for (int64_t i = r0; i < r1; i++) y[i] = 0.0;
            for (int b = 0; b < p->nblocks; b++) {
                const int64_t *restrict bp = p->ptr + (int64_t)b * (p->n_rows + 1);
                int64_t last = bp[p->n_rows];
                for (int64_t i = r0; i < r1; i++) {
                    spmv_val s = 0;
                    for (int64_t k = bp[i]; k < bp[i + 1]; k++) {
#if SPMV_PREFETCH
                        if (k + SPMV_PREFETCH < last) __builtin_prefetch(&x[col[k + SPMV_PREFETCH]]);
#endif
                        s += val[k] * x[col[k]];
                    }
                    y[i] += s;
                }
                (void)last;
            }
        }
    }
}

void SPMV_NAME(free)(SPMV_NAME(plan) *p)
{
    if (!p) return;
    free(p->bounds); free(p->ptr); free(p->col); free(p->val);
    free(p);
}
