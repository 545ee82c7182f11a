/* ---- kernel: nonzeros split evenly over threads (csr_split, csr_split_prefetch) ----
   A row longer than a thread's share is split; each part owns the rows that *end*
   in its range and carries a partial sum for the row that continues past it,
   added after the parallel loop.
   SPMV_PREFETCH  distance in nonzeros of the x prefetch (0: none) */
#ifndef SPMV_PREFETCH
#define SPMV_PREFETCH 0
#endif

struct SPMV_NAME(plan) {
    int64_t n_rows, n_cols, nnz;
    int nparts;
    int64_t *kb;               /* (nparts + 1) nonzero bounds */
    int64_t *first, *end;      /* rows first[p] .. end[p]-1 end inside part p */
    int64_t *tail;             /* row continuing past part p, or -1 */
    spmv_val *carry;             /* its partial sum */
    const spmv_idx *indptr, *indices;
    const spmv_val *data;
};

/* first row r >= lo with indptr[r + 1] > k */
static int64_t SPMV_NAME(row_ending_after)(const spmv_idx *indptr, int64_t n_rows, int64_t k)
{
    int64_t lo = 0, hi = n_rows;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if ((int64_t)indptr[mid + 1] > k) hi = mid; else lo = mid + 1;
    }
    return lo;
}

SPMV_NAME(plan) *SPMV_NAME(prepare)(int64_t n_rows, int64_t n_cols, const spmv_idx *indptr,
                                    const spmv_idx *indices, const spmv_val *data, int threads)
{
    SPMV_NAME(plan) *p = spmv_alloc(sizeof *p);
    if (!p) return NULL;
    int np = spmv_threads(threads);
    p->n_rows = n_rows; p->n_cols = n_cols; p->nnz = indptr[n_rows]; p->nparts = np;
    p->indptr = indptr; p->indices = indices; p->data = data;
    p->kb = spmv_alloc(sizeof(int64_t) * (np + 1));
    p->first = spmv_alloc(sizeof(int64_t) * np);
    p->end = spmv_alloc(sizeof(int64_t) * np);
    p->tail = spmv_alloc(sizeof(int64_t) * np);
    p->carry = spmv_alloc(sizeof(spmv_val) * np);
    if (!p->kb || !p->first || !p->end || !p->tail || !p->carry) {
        SPMV_NAME(free)(p); return NULL;
    }
    for (int t = 0; t <= np; t++) p->kb[t] = (int64_t)((double)p->nnz * t / np + 0.5);
    for (int t = 0; t < np; t++) {
        int64_t lo = p->kb[t], hi = p->kb[t + 1];
        p->first[t] = t == 0 ? 0 : SPMV_NAME(row_ending_after)(indptr, n_rows, lo);
        p->end[t] = t == np - 1 ? n_rows : SPMV_NAME(row_ending_after)(indptr, n_rows, hi);
        /* the row holding nonzero hi-1, if it goes on past hi */
        int64_t r = hi > lo ? SPMV_NAME(row_ending_after)(indptr, n_rows, hi - 1) : n_rows;
        p->tail[t] = (r < n_rows && (int64_t)indptr[r + 1] > hi) ? r : -1;
    }
    spmv_error_buf[0] = 0;
    return p;
}

void SPMV_NAME(run)(const SPMV_NAME(plan) *p, const spmv_val *restrict x, spmv_val *restrict y)
{
    const spmv_idx *restrict indptr = p->indptr;
    const spmv_idx *restrict col = p->indices;
    const spmv_val *restrict val = p->data;
    #pragma omp parallel for schedule(static, 1) num_threads(p->nparts)
    for (int t = 0; t < p->nparts; t++) {
        int64_t lo = p->kb[t], hi = p->kb[t + 1];
        for (int64_t i = p->first[t]; i < p->end[t]; i++) {
            int64_t k = indptr[i] > lo ? (int64_t)indptr[i] : lo, e = indptr[i + 1];
            spmv_val s = 0;
            for (; k < e; k++) {
#if SPMV_PREFETCH
                if (k + SPMV_PREFETCH < p->nnz) __builtin_prefetch(&x[col[k + SPMV_PREFETCH]]);
#endif
                s += val[k] * x[col[k]];
            }
            y[i] = s;
        }
        spmv_val c = 0;
        if (p->tail[t] >= 0) {
            int64_t r = p->tail[t];
            for (int64_t k = indptr[r] > lo ? (int64_t)indptr[r] : lo; k < hi; k++)
                c += val[k] * x[col[k]];
        }
        p->carry[t] = c;
    }
    for (int t = 0; t < p->nparts; t++)
        if (p->tail[t] >= 0) y[p->tail[t]] += p->carry[t];
}

void SPMV_NAME(free)(SPMV_NAME(plan) *p)
{
    if (!p) return;
    free(p->kb); free(p->first); free(p->end); free(p->tail); free(p->carry);
    free(p);
}
