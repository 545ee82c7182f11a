/* ---- kernel: register-blocked BCSR (bcsr, bcsr_vi) ----
   SPMV_BR x SPMV_BC dense blocks (zeros filled in), one column per block; the
   block shape is fixed at compile time so the inner loops unroll.  Blocks of
   several rows sit on the aligned grid; 1 x c blocks are *unaligned runs*
   that may start at any column (a stencil's i-1, i, i+1 is one run, not two
   half-empty blocks).  Threads over block rows of equal block count.
   SPMV_BR, SPMV_BC   block shape (chosen by spmvtune emit for the matrix)
   SPMV_VALUE_INDEX   1: block values as SPMV_CODE codes into a table */
#ifndef SPMV_BR
#define SPMV_BR 2
#endif
#ifndef SPMV_BC
#define SPMV_BC 2
#endif
#ifndef SPMV_VALUE_INDEX
#define SPMV_VALUE_INDEX 0
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
    spmv_val *val;               /* (n_blocks * BR * BC) row-major blocks */
#if SPMV_VALUE_INDEX
    SPMV_CODE *codes;
    spmv_val *table;
#endif
};

/* First column of a 1 x c run covering column j: j itself, moved left so the
   run stays inside the matrix when it can. */
#if SPMV_BR == 1
static int64_t SPMV_NAME(run_start)(int64_t j, int64_t n_cols)
{
    int64_t s = n_cols - SPMV_BC;
    return j < s ? j : (s > 0 ? s : 0);
}
#endif

SPMV_NAME(plan) *SPMV_NAME(prepare)(int64_t n_rows, int64_t n_cols, const spmv_idx *indptr,
                                    const spmv_idx *indices, const spmv_val *data, int threads)
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
    /* pass 1: count blocks per block row */
    int64_t nb = 0;
    p->bptr[0] = 0;
    for (int64_t br = 0; br < nbr; br++) {
#if SPMV_BR == 1
        int64_t run_end = -1;          /* runs: a new one at each uncovered column */
        for (int64_t k = indptr[br]; k < indptr[br + 1]; k++)
            if (indices[k] >= run_end) { run_end = SPMV_NAME(run_start)(indices[k], n_cols) + SPMV_BC; nb++; }
#else
        int64_t r1 = (br + 1) * SPMV_BR < n_rows ? (br + 1) * SPMV_BR : n_rows;
        for (int64_t i = br * SPMV_BR; i < r1; i++)
            for (int64_t k = indptr[i]; k < indptr[i + 1]; k++) {
                int64_t bc = indices[k] / SPMV_BC;
                if (slot[bc] != br) { slot[bc] = br; nb++; }
            }
#endif
        p->bptr[br + 1] = nb;
    }
    p->n_blocks = nb;
    p->bcol = spmv_alloc(sizeof(int64_t) * (size_t)nb);
    p->val = calloc((size_t)(nb ? nb : 1) * SPMV_BS, sizeof(spmv_val));
    if (!p->bcol || !p->val) { free(slot); SPMV_NAME(free)(p); return spmv_fail("out of memory"); }
    /* pass 2: place the blocks, then the values */
    for (int64_t j = 0; j < nbc; j++) slot[j] = -1;
    for (int64_t br = 0; br < nbr; br++) {
#if SPMV_BR == 1
        int64_t b = p->bptr[br] - 1, start = 0, run_end = -1;
        for (int64_t k = indptr[br]; k < indptr[br + 1]; k++) {
            if (indices[k] >= run_end) {
                start = SPMV_NAME(run_start)(indices[k], n_cols);
                run_end = start + SPMV_BC;
                p->bcol[++b] = start;
            }
            p->val[b * SPMV_BS + (indices[k] - start)] += data[k];
        }
#else
        int64_t r1 = (br + 1) * SPMV_BR < n_rows ? (br + 1) * SPMV_BR : n_rows, b = p->bptr[br];
        for (int64_t i = br * SPMV_BR; i < r1; i++)
            for (int64_t k = indptr[i]; k < indptr[i + 1]; k++) {
                int64_t bc = indices[k] / SPMV_BC;
                if (slot[bc] < p->bptr[br]) { slot[bc] = b; p->bcol[b++] = bc * SPMV_BC; }
                p->val[slot[bc] * SPMV_BS + (i - br * SPMV_BR) * SPMV_BC
                       + (indices[k] - bc * SPMV_BC)] += data[k];
            }
#endif
    }
    free(slot);
    /* partitions of about equal blocks */
    int64_t r = 0;
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

void SPMV_NAME(run)(const SPMV_NAME(plan) *p, const spmv_val *restrict x, spmv_val *restrict y)
{
    #pragma omp parallel for schedule(static, 1) num_threads(p->nparts)
    for (int t = 0; t < p->nparts; t++) {
        for (int64_t br = p->bounds[t]; br < p->bounds[t + 1]; br++) {
            spmv_val s[SPMV_BR] = {0};
            for (int64_t b = p->bptr[br]; b < p->bptr[br + 1]; b++) {
                int64_t c0 = p->bcol[b], base = b * SPMV_BS;
                if (c0 + SPMV_BC <= p->n_cols) {
                    for (int r = 0; r < SPMV_BR; r++)
                        for (int c = 0; c < SPMV_BC; c++)
                            s[r] += BVAL(base + r * SPMV_BC + c) * x[c0 + c];
                } else {                       /* a block reaching past the last column */
                    for (int r = 0; r < SPMV_BR; r++)
                        for (int c = 0; c0 + c < p->n_cols; c++)
                            s[r] += BVAL(base + r * SPMV_BC + c) * x[c0 + c];
                }
            }
            for (int r = 0; r < SPMV_BR && br * SPMV_BR + r < p->n_rows; r++)
                y[br * SPMV_BR + r] = s[r];
        }
    }
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
