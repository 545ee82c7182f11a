/* ---- kernel: symmetric storage (csr_sym) ----
   Symmetric, skew-symmetric or (complex) hermitian square matrices: only the
   lower triangle (diagonal included) is kept.  Row i contributes a[i,j] x[j]
   to y[i] and a[j,i] x[i] = (+/-) a[i,j] x[i] (conj(a[i,j]) x[i] when
   hermitian) to y[j] for j < i; those transposed updates go to a per-thread
   buffer (no races), summed afterwards.  prepare checks the symmetry (column
   indices must be sorted within rows) and fails otherwise. */

struct SPMV_NAME(plan) {
    int64_t n;
    int nparts;
    int skew;                  /* 1: a[j,i] = -a[i,j] */
    int herm;                  /* 1: a[j,i] = conj(a[i,j]) */
    int64_t *bounds;
    int64_t *ptr, *col;        /* lower triangle, CSR */
    spmv_val *val;
    spmv_val *buf;               /* (nparts * n) transposed updates */
};

static int SPMV_NAME(find)(const spmv_idx *indptr, const spmv_idx *indices, int64_t row,
                           int64_t col, int64_t *pos)
{
    int64_t lo = indptr[row], hi = indptr[row + 1];
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if ((int64_t)indices[mid] < col) lo = mid + 1; else hi = mid;
    }
    *pos = lo;
    return lo < indptr[row + 1] && (int64_t)indices[lo] == col;
}

SPMV_NAME(plan) *SPMV_NAME(prepare)(int64_t n_rows, int64_t n_cols, const spmv_idx *indptr,
                                    const spmv_idx *indices, const spmv_val *data, int threads)
{
    if (n_rows != n_cols) return spmv_fail("csr_sym needs a square matrix");
    int sym = 1, skew = 1, herm = SPMV_COMPLEX;
    for (int64_t i = 0; i < n_rows && (sym || skew || herm); i++)
        for (int64_t k = indptr[i]; k < indptr[i + 1]; k++) {
            int64_t j = indices[k], pos;
            if (k > indptr[i] && indices[k] <= indices[k - 1])
                return spmv_fail("column indices must be sorted and unique within rows");
            spmv_val mirror = SPMV_NAME(find)(indptr, indices, j, i, &pos) ? data[pos] : (spmv_val)0;
            if (mirror != data[k]) sym = 0;
            if (mirror != -data[k]) skew = 0;
            if (mirror != SPMV_CONJ(data[k])) herm = 0;
        }
    if (!sym && !skew && !herm)
        return spmv_fail("the matrix is neither symmetric, skew-symmetric nor hermitian");
    SPMV_NAME(plan) *p = spmv_alloc(sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->n = n_rows; p->skew = !sym && skew; p->herm = !sym && !skew; p->nparts = spmv_threads(threads);
    int64_t lower = 0;
    for (int64_t i = 0; i < n_rows; i++)
        for (int64_t k = indptr[i]; k < indptr[i + 1]; k++) lower += indices[k] <= i;
    p->ptr = spmv_alloc(sizeof(int64_t) * (n_rows + 1));
    p->col = spmv_alloc(sizeof(int64_t) * (size_t)lower);
    p->val = spmv_alloc(sizeof(spmv_val) * (size_t)lower);
    p->bounds = spmv_alloc(sizeof(int64_t) * (p->nparts + 1));
    p->buf = spmv_alloc(sizeof(spmv_val) * (size_t)p->nparts * (size_t)n_rows);
    if (!p->ptr || !p->col || !p->val || !p->bounds || !p->buf) { SPMV_NAME(free)(p); return NULL; }
    int64_t m = 0;
    p->ptr[0] = 0;
    for (int64_t i = 0; i < n_rows; i++) {
        for (int64_t k = indptr[i]; k < indptr[i + 1]; k++)
            if (indices[k] <= i) { p->col[m] = indices[k]; p->val[m++] = data[k]; }
        p->ptr[i + 1] = m;
    }
    /* balance on the lower triangle: each stored entry costs two updates */
    int64_t total = m + n_rows, r = 0;
    p->bounds[0] = 0;
    for (int t = 1; t < p->nparts; t++) {
        double target = (double)total * t / p->nparts;
        while (r < n_rows && (double)(p->ptr[r] + r) < target) r++;
        p->bounds[t] = r;
    }
    p->bounds[p->nparts] = n_rows;
    spmv_error_buf[0] = 0;
    return p;
}

void SPMV_NAME(run)(const SPMV_NAME(plan) *p, const spmv_val *restrict x, spmv_val *restrict y)
{
    const int64_t n = p->n;
    const spmv_val sign = p->skew ? -1 : 1;
    #pragma omp parallel num_threads(p->nparts)
    {
        int t = spmv_thread_num();
        if (t < p->nparts) {
            spmv_val *restrict buf = p->buf + (int64_t)t * n;
            memset(buf, 0, sizeof(spmv_val) * (size_t)n);
            for (int64_t i = p->bounds[t]; i < p->bounds[t + 1]; i++) {
                spmv_val s = 0, xi = x[i];
                for (int64_t k = p->ptr[i]; k < p->ptr[i + 1]; k++) {
                    int64_t j = p->col[k];
                    s += p->val[k] * x[j];
                    if (j < i) buf[j] += (p->herm ? SPMV_CONJ(p->val[k]) : sign * p->val[k]) * xi;
                }
                buf[i] += s;
            }
        }
        #pragma omp barrier
        #pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            spmv_val s = 0;
            for (int u = 0; u < p->nparts; u++) s += p->buf[(int64_t)u * n + i];
            y[i] = s;
        }
    }
}

void SPMV_NAME(free)(SPMV_NAME(plan) *p)
{
    if (!p) return;
    free(p->ptr); free(p->col); free(p->val); free(p->bounds); free(p->buf);
    free(p);
}
