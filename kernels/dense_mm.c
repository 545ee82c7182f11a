/* ---- kernel: dense product with many right-hand sides (dense_mm) ----
   For layers dense enough that storing the zeros costs less than indexing the
   nonzeros: the matrix is expanded to row-major dense once; Y = A X with X
   row-major (n_cols x k), each row of Y accumulated in SPMV_PANEL-column
   register panels over the row of A.  (The Numba twin calls the BLAS gemm,
   which also blocks for the caches.)  run(plan, x, y) is matmat with k = 1. */
#ifndef SPMV_PANEL
#define SPMV_PANEL 16
#endif

struct SPMV_NAME(plan) {
    int64_t n_rows, n_cols;
    int nparts;
    double *a;                 /* (n_rows * n_cols) row-major */
};

SPMV_NAME(plan) *SPMV_NAME(prepare)(int64_t n_rows, int64_t n_cols, const spmv_idx *indptr,
                                    const spmv_idx *indices, const double *data, int threads)
{
    SPMV_NAME(plan) *p = spmv_alloc(sizeof *p);
    if (!p) return NULL;
    p->n_rows = n_rows; p->n_cols = n_cols; p->nparts = spmv_threads(threads);
    size_t cells = (size_t)n_rows * (size_t)n_cols;
    p->a = calloc(cells ? cells : 1, sizeof(double));
    if (!p->a) { free(p); return spmv_fail("out of memory for the dense matrix"); }
    for (int64_t i = 0; i < n_rows; i++)
        for (int64_t q = indptr[i]; q < indptr[i + 1]; q++)
            p->a[i * n_cols + indices[q]] += data[q];
    spmv_error_buf[0] = 0;
    return p;
}

void SPMV_NAME(matmat)(const SPMV_NAME(plan) *p, int64_t k, const double *X, double *Y)
{
    const int64_t n = p->n_cols;
    #pragma omp parallel for schedule(static) num_threads(p->nparts)
    for (int64_t i = 0; i < p->n_rows; i++) {
        const double *restrict row = p->a + i * n;
        for (int64_t c0 = 0; c0 < k; c0 += SPMV_PANEL) {
            int64_t w = k - c0 < SPMV_PANEL ? k - c0 : SPMV_PANEL;
            double acc[SPMV_PANEL] = {0};
            for (int64_t j = 0; j < n; j++) {
                const double a = row[j];
                const double *restrict xr = X + j * k + c0;
                if (w == SPMV_PANEL)
                    for (int c = 0; c < SPMV_PANEL; c++) acc[c] += a * xr[c];
                else
                    for (int64_t c = 0; c < w; c++) acc[c] += a * xr[c];
            }
            for (int64_t c = 0; c < w; c++) Y[i * k + c0 + c] = acc[c];
        }
    }
}

void SPMV_NAME(run)(const SPMV_NAME(plan) *p, const double *x, double *y)
{
    SPMV_NAME(matmat)(p, 1, x, y);
}

void SPMV_NAME(free)(SPMV_NAME(plan) *p)
{
    if (!p) return;
    free(p->a);
    free(p);
}
