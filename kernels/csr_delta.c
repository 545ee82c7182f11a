/* ---- kernel: delta-compressed column indices (csr_delta, csr_delta_vi) ----
   Each row stores its first column and the gaps to the next ones in 1, 2 or
   4 bytes, the width chosen per row by its widest gap; threads over row
   blocks of equal nonzero count.
   SPMV_VALUE_INDEX  1: values as SPMV_CODE codes into a table of distinct values */
#ifndef SPMV_VALUE_INDEX
#define SPMV_VALUE_INDEX 0
#endif

struct SPMV_NAME(plan) {
    int64_t n_rows, n_cols, nnz;
    int nparts;
    int64_t *bounds;
    const spmv_idx *indptr;    /* the caller's row pointer and values: keep them alive */
    const spmv_val *data;
    int64_t *first_col;        /* (n_rows) column of each row's first nonzero */
    int64_t *offset;           /* (n_rows) byte offset of the row's gaps in stream */
    uint8_t *width;            /* (n_rows) bytes per gap: 1, 2 or 4 */
    uint8_t *stream;
#if SPMV_VALUE_INDEX
    SPMV_CODE *codes;
    spmv_val *table;
#endif
};

SPMV_NAME(plan) *SPMV_NAME(prepare)(int64_t n_rows, int64_t n_cols, const spmv_idx *indptr,
                                    const spmv_idx *indices, const spmv_val *data, int threads)
{
    SPMV_NAME(plan) *p = spmv_alloc(sizeof *p);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->n_rows = n_rows; p->n_cols = n_cols; p->nnz = indptr[n_rows];
    p->indptr = indptr; p->data = data;
    p->nparts = spmv_threads(threads);
    p->bounds = spmv_alloc(sizeof(int64_t) * (p->nparts + 1));
    p->first_col = spmv_alloc(sizeof(int64_t) * n_rows);
    p->offset = spmv_alloc(sizeof(int64_t) * n_rows);
    p->width = spmv_alloc(n_rows);
    if (!p->bounds || !p->first_col || !p->offset || !p->width) { SPMV_NAME(free)(p); return NULL; }
    spmv_row_partition(n_rows, indptr, p->nparts, 1, p->bounds);
    int64_t bytes = 0;
    for (int64_t i = 0; i < n_rows; i++) {
        int64_t gap = 0;
        for (int64_t k = indptr[i] + 1; k < indptr[i + 1]; k++) {
            int64_t g = (int64_t)indices[k] - (int64_t)indices[k - 1];
            if (g < 0) { SPMV_NAME(free)(p); return spmv_fail("column indices must be sorted within rows"); }
            if (g > gap) gap = g;
        }
        if (gap > (int64_t)UINT32_MAX) { SPMV_NAME(free)(p); return spmv_fail("a gap between columns exceeds 32 bits"); }
        p->width[i] = gap < 256 ? 1 : gap < 65536 ? 2 : 4;
        p->first_col[i] = indptr[i + 1] > indptr[i] ? (int64_t)indices[indptr[i]] : 0;
        p->offset[i] = bytes;
        int64_t n = indptr[i + 1] - indptr[i];
        bytes += (n > 1 ? n - 1 : 0) * p->width[i];
    }
    p->stream = spmv_alloc((size_t)bytes);
    if (!p->stream) { SPMV_NAME(free)(p); return NULL; }
    for (int64_t i = 0; i < n_rows; i++) {
        uint8_t *s = p->stream + p->offset[i];
        for (int64_t k = indptr[i] + 1; k < indptr[i + 1]; k++) {
            uint32_t g = (uint32_t)((int64_t)indices[k] - (int64_t)indices[k - 1]);
            if (p->width[i] == 1) { *s = (uint8_t)g; s += 1; }
            else if (p->width[i] == 2) { uint16_t h = (uint16_t)g; memcpy(s, &h, 2); s += 2; }
            else { memcpy(s, &g, 4); s += 4; }
        }
    }
#if SPMV_VALUE_INDEX
    if (!spmv_value_index(data, p->nnz, &p->codes, &p->table)) { SPMV_NAME(free)(p); return NULL; }
#endif
    spmv_error_buf[0] = 0;
    return p;
}

#define SPMV_DELTA_ROW(T)                                              \
    do {                                                               \
        const uint8_t *s = p->stream + p->offset[i];                   \
        for (k++; k < e; k++, s += sizeof(T)) {                        \
            T g; memcpy(&g, s, sizeof(T));                             \
            c += g;                                                    \
            acc += SPMV_VAL(p, k) * x[c];                                      \
        }                                                              \
    } while (0)

void SPMV_NAME(run)(const SPMV_NAME(plan) *p, const spmv_val *restrict x, spmv_val *restrict y)
{
    #pragma omp parallel for schedule(static, 1) num_threads(p->nparts)
    for (int t = 0; t < p->nparts; t++) {
        for (int64_t i = p->bounds[t]; i < p->bounds[t + 1]; i++) {
            int64_t k = p->indptr[i], e = p->indptr[i + 1];
            spmv_val acc = 0;
            if (k < e) {
                int64_t c = p->first_col[i];
                acc = SPMV_VAL(p, k) * x[c];
                if (p->width[i] == 1) SPMV_DELTA_ROW(uint8_t);
                else if (p->width[i] == 2) SPMV_DELTA_ROW(uint16_t);
                else SPMV_DELTA_ROW(uint32_t);
            }
            y[i] = acc;
        }
    }
}

void SPMV_NAME(free)(SPMV_NAME(plan) *p)
{
    if (!p) return;
    free(p->bounds); free(p->first_col); free(p->offset); free(p->width); free(p->stream);
#if SPMV_VALUE_INDEX
    free(p->codes); free(p->table);
#endif
    free(p);
}
