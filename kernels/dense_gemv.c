/* ---- kernel: dense matrix-vector product (dense_gemv) ----
   For matrices dense enough that storing the zeros costs less than indexing
   the nonzeros: the matrix is expanded to row-major dense once. */

struct SPMV_NAME(plan) {
    int64_t n_rows, n_cols;
    int nparts;
    spmv_val *a;                 /* (n_rows * n_cols) row-major */
};

SPMV_NAME(plan) *SPMV_NAME(prepare)(int64_t n_rows, int64_t n_cols, const spmv_idx *indptr,
                                    const spmv_idx *indices, const spmv_val *data, int threads)
{
    SPMV_NAME(plan) *p = spmv_alloc(sizeof *p);
    if (!p) return NULL;
    p->n_rows = n_rows; p->n_cols = n_cols; p->nparts = spmv_threads(threads);
    size_t cells = (size_t)n_rows * (size_t)n_cols;
    p->a = calloc(cells ? cells : 1, sizeof(spmv_val));
    if (!p->a) { free(p); return spmv_fail("out of memory for the dense matrix"); }
    for (int64_t i = 0; i < n_rows; i++)
        for (int64_t k = indptr[i]; k < indptr[i + 1]; k++)
            p->a[i * n_cols + indices[k]] += data[k];
    spmv_error_buf[0] = 0;
    return p;
}

void SPMV_NAME(run)(const SPMV_NAME(plan) *p, const spmv_val *restrict x, spmv_val *restrict y)
{
    const int64_t m = p->n_cols;
    #pragma omp parallel for schedule(static) num_threads(p->nparts)
    for (int64_t i = 0; i < p->n_rows; i++) {
        const spmv_val *restrict row = p->a + i * m;
        spmv_val s = 0;
        for (int64_t j = 0; j < m; j++) s += row[j] * x[j];
        y[i] = s;
    }
}

void SPMV_NAME(free)(SPMV_NAME(plan) *p)
{
    if (!p) return;
    free(p->a);
    free(p);
}
