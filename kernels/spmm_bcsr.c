/* ---- kernel: many right-hand sides, register-blocked BCSR (spmm_bcsr, spmm_bcsr_vi) ----
   Y = A X for k vectors at once (X row-major, n_cols x k; Y n_rows x k) over
   aligned SPMV_BR x SPMV_BC blocks (zeros filled in): the slice of X for each
   block column is loaded once and multiply-added into SPMV_BR rows' partial
   sums, held in registers for SPMV_PANEL columns of Y at a time.
   run(plan, x, y) is matmat with k = 1.
   SPMV_BR, SPMV_BC   block shape (spmvtune chooses r x 1, r = 2..4)
   SPMV_VALUE_INDEX   1: block values as SPMV_CODE codes into a table
   SPMV_PANEL         columns of Y per register panel */
#ifndef SPMV_BR
#define SPMV_BR 4
#endif
#ifndef SPMV_BC
#define SPMV_BC 1
#endif
#ifndef SPMV_VALUE_INDEX
#define SPMV_VALUE_INDEX 0
#endif
#ifndef SPMV_PANEL
#define SPMV_PANEL 8
#endif
#define SPMV_BS (SPMV_BR * SPMV_BC)

#if SPMV_VALUE_INDEX
#define BVAL(k) (p->table[p->codes[k]])
#else
#define BVAL(k) (p->val[k])
#endif

struct SPMV_NAME(plan) {
    int64_t n_rows, n_cols, n_brows, n_blocks;
    int nparts;
    int64_t *bounds;           /* block-row partitions */
    int64_t *bptr, *bcol;      /* (n_brows + 1), (n_blocks) first column of each block */
    double *val;               /* (n_blocks * BR * BC) row-major blocks */
#if SPMV_VALUE_INDEX
    SPMV_CODE *codes;
    double *table;
#endif
};

void SPMV_NAME(free)(SPMV_NAME(plan) *p);

SPMV_NAME(plan) *SPMV_NAME(prepare)(int64_t n_rows, int64_t n_cols, const spmv_idx *indptr,
                                    const spmv_idx *indices, const double *data, int threads)
{
    SPMV_NAME(plan) *p = spmv_alloc(sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    int64_t nbr = (n_rows + SPMV_BR - 1) / SPMV_BR, nbc = (n_cols + SPMV_BC - 1) / SPMV_BC;
    p->n_rows = n_rows; p->n_cols = n_cols; p->n_brows = nbr;
    p->nparts = spmv_threads(threads);
    p->bptr = spmv_alloc(sizeof(int64_t) * (nbr + 1));
    p->bounds = spmv_alloc(sizeof(int64_t) * (p->nparts + 1));
    int64_t *slot = spmv_alloc(sizeof(int64_t) * (nbc ? nbc : 1));   /* block column -> block */
    if (!p->bptr || !p->bounds || !slot) { free(slot); SPMV_NAME(free)(p); return NULL; }
    for (int64_t j = 0; j < nbc; j++) slot[j] = -1;
    int64_t nb = 0;                    /* pass 1: count blocks per block row */
    p->bptr[0] = 0;
    for (int64_t br = 0; br < nbr; br++) {
        int64_t r1 = (br + 1) * SPMV_BR < n_rows ? (br + 1) * SPMV_BR : n_rows;
        for (int64_t i = br * SPMV_BR; i < r1; i++)
            for (int64_t q = indptr[i]; q < indptr[i + 1]; q++) {
                int64_t bc = indices[q] / SPMV_BC;
                if (slot[bc] != br) { slot[bc] = br; nb++; }
            }
        p->bptr[br + 1] = nb;
    }
    p->n_blocks = nb;
    p->bcol = spmv_alloc(sizeof(int64_t) * (size_t)(nb ? nb : 1));
    p->val = calloc((size_t)(nb ? nb : 1) * SPMV_BS, sizeof(double));
    if (!p->bcol || !p->val) { free(slot); SPMV_NAME(free)(p); return spmv_fail("out of memory"); }
    for (int64_t j = 0; j < nbc; j++) slot[j] = -1;
    for (int64_t br = 0; br < nbr; br++) {   /* pass 2: place the blocks, then the values */
        int64_t r1 = (br + 1) * SPMV_BR < n_rows ? (br + 1) * SPMV_BR : n_rows, b = p->bptr[br];
        for (int64_t i = br * SPMV_BR; i < r1; i++)
            for (int64_t q = indptr[i]; q < indptr[i + 1]; q++) {
                int64_t bc = indices[q] / SPMV_BC;
                if (slot[bc] < p->bptr[br]) { slot[bc] = b; p->bcol[b++] = bc * SPMV_BC; }
                p->val[slot[bc] * SPMV_BS + (i - br * SPMV_BR) * SPMV_BC
                       + (indices[q] - bc * SPMV_BC)] += data[q];
            }
    }
    free(slot);
    int64_t r = 0;                     /* partitions of about equal blocks + block rows */
    p->bounds[0] = 0;
    for (int t = 1; t < p->nparts; t++) {
        double target = (double)(nb + nbr) * t / p->nparts;
        while (r < nbr && (double)(p->bptr[r] + r) < target) r++;
        p->bounds[t] = r;
    }
    p->bounds[p->nparts] = nbr;
#if SPMV_VALUE_INDEX
    if (!spmv_value_index(p->val, nb * SPMV_BS, &p->codes, &p->table)) { SPMV_NAME(free)(p); return NULL; }
    free(p->val); p->val = NULL;
#endif
    spmv_error_buf[0] = 0;
    return p;
}

/* Y[br * BR .. + BR, c0:c0 + w] from the blocks of block row br. */
static inline void SPMV_NAME(panel)(const SPMV_NAME(plan) *p, int64_t br, int64_t c0, int64_t w,
                                    int64_t k, const double *restrict X, double *restrict Y)
{
    double acc[SPMV_BR][SPMV_PANEL] = {{0}};
    for (int64_t b = p->bptr[br]; b < p->bptr[br + 1]; b++) {
        int64_t j0 = p->bcol[b], base = b * SPMV_BS;
        for (int c = 0; c < SPMV_BC && j0 + c < p->n_cols; c++) {
            const double *restrict xr = X + (j0 + c) * k + c0;
            for (int r = 0; r < SPMV_BR; r++) {
                const double a = BVAL(base + r * SPMV_BC + c);
                if (w == SPMV_PANEL)
                    for (int j = 0; j < SPMV_PANEL; j++) acc[r][j] += a * xr[j];
                else
                    for (int64_t j = 0; j < w; j++) acc[r][j] += a * xr[j];
            }
        }
    }
    for (int r = 0; r < SPMV_BR && br * SPMV_BR + r < p->n_rows; r++)
        for (int64_t j = 0; j < w; j++) Y[(br * SPMV_BR + r) * k + c0 + j] = acc[r][j];
}

void SPMV_NAME(matmat)(const SPMV_NAME(plan) *p, int64_t k, const double *X, double *Y)
{
    #pragma omp parallel for schedule(static, 1) num_threads(p->nparts)
    for (int t = 0; t < p->nparts; t++)
        for (int64_t br = p->bounds[t]; br < p->bounds[t + 1]; br++)
            for (int64_t c0 = 0; c0 < k; c0 += SPMV_PANEL)
                SPMV_NAME(panel)(p, br, c0, k - c0 < SPMV_PANEL ? k - c0 : SPMV_PANEL, k, X, Y);
}

void SPMV_NAME(run)(const SPMV_NAME(plan) *p, const double *x, double *y)
{
    SPMV_NAME(matmat)(p, 1, x, y);
}

void SPMV_NAME(free)(SPMV_NAME(plan) *p)
{
    if (!p) return;
    free(p->bounds); free(p->bptr); free(p->bcol); free(p->val);
#if SPMV_VALUE_INDEX
    free(p->codes); free(p->table);
#endif
    free(p);
}
