/* ---- kernel: many right-hand sides, row-wise CSR (spmm_csr, spmm_vi) ----
   Y = A X for k vectors at once: X is row-major (n_cols x k), Y (n_rows x k).
   Each row of Y is swept in panels of SPMV_PANEL columns whose partial sums
   stay in registers (a fixed-size local array the compiler vectorizes) across
   the row's nonzeros: the matrix is read once for all k vectors.
   run(plan, x, y) is matmat with k = 1.
   SPMV_VALUE_INDEX  1: values as SPMV_CODE codes into a table of distinct values
   SPMV_PANEL        columns of Y per register panel (16: four AVX2 registers) */
#ifndef SPMV_VALUE_INDEX
#define SPMV_VALUE_INDEX 0
#endif
#ifndef SPMV_PANEL
#define SPMV_PANEL 16
#endif
#ifndef SPMV_CODE
#define SPMV_CODE uint16_t
#endif

struct SPMV_NAME(plan) {
    int64_t n_rows, n_cols, nnz;
    int nparts;
    int64_t *bounds;           /* (nparts + 1) row bounds of about equal nnz + rows */
    const spmv_idx *indptr;    /* the caller's arrays: they must outlive the plan */
    const spmv_idx *indices;
    const double *data;
#if SPMV_VALUE_INDEX
    SPMV_CODE *codes;          /* (nnz) index into table */
    double *table;             /* distinct values */
#endif
};

SPMV_NAME(plan) *SPMV_NAME(prepare)(int64_t n_rows, int64_t n_cols, const spmv_idx *indptr,
                                    const spmv_idx *indices, const double *data, int threads)
{
    SPMV_NAME(plan) *p = spmv_alloc(sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->n_rows = n_rows; p->n_cols = n_cols; p->nnz = indptr[n_rows];
    p->indptr = indptr; p->indices = indices; p->data = data;
    p->nparts = spmv_threads(threads);
    p->bounds = spmv_alloc(sizeof(int64_t) * (p->nparts + 1));
    if (!p->bounds) { free(p); return NULL; }
    spmv_row_partition(n_rows, indptr, p->nparts, 1, p->bounds);
#if SPMV_VALUE_INDEX
    if (!spmv_value_index(data, p->nnz, &p->codes, &p->table)) {
        free(p->bounds); free(p); return NULL;
    }
#endif
    spmv_error_buf[0] = 0;
    return p;
}

/* Y[i, c0:c0 + w] for w <= SPMV_PANEL (w == SPMV_PANEL: constant trip counts). */
static inline void SPMV_NAME(panel)(const SPMV_NAME(plan) *p, int64_t i, int64_t c0, int64_t w,
                                    int64_t k, const double *restrict X, double *restrict Y)
{
    double acc[SPMV_PANEL] = {0};
    const spmv_idx *restrict col = p->indices;
    if (w == SPMV_PANEL) {
        for (int64_t q = p->indptr[i]; q < p->indptr[i + 1]; q++) {
            const double a = SPMV_VAL(p, q);
            const double *restrict xr = X + (int64_t)col[q] * k + c0;
            for (int c = 0; c < SPMV_PANEL; c++) acc[c] += a * xr[c];
        }
    } else {
        for (int64_t q = p->indptr[i]; q < p->indptr[i + 1]; q++) {
            const double a = SPMV_VAL(p, q);
            const double *restrict xr = X + (int64_t)col[q] * k + c0;
            for (int64_t c = 0; c < w; c++) acc[c] += a * xr[c];
        }
    }
    for (int64_t c = 0; c < w; c++) Y[i * k + c0 + c] = acc[c];
}

void SPMV_NAME(matmat)(const SPMV_NAME(plan) *p, int64_t k, const double *X, double *Y)
{
    #pragma omp parallel for schedule(static, 1) num_threads(p->nparts)
    for (int t = 0; t < p->nparts; t++)
        for (int64_t i = p->bounds[t]; i < p->bounds[t + 1]; i++)
            for (int64_t c0 = 0; c0 < k; c0 += SPMV_PANEL)
                SPMV_NAME(panel)(p, i, c0, k - c0 < SPMV_PANEL ? k - c0 : SPMV_PANEL, k, X, Y);
}

void SPMV_NAME(run)(const SPMV_NAME(plan) *p, const double *x, double *y)
{
    SPMV_NAME(matmat)(p, 1, x, y);
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
