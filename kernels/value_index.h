/* ---- value index: values as SPMV_CODE codes into a table of distinct values ---- */
#ifndef SPMV_CODE
#define SPMV_CODE uint16_t
#endif

static int spmv_cmp_u64(const void *a, const void *b)
{
    uint64_t u = *(const uint64_t *)a, v = *(const uint64_t *)b;
    return (u > v) - (u < v);
}

/* Distinct values compared bit for bit (so -0.0 and NaN payloads survive).
   Returns 0 (and sets the error) when they do not fit SPMV_CODE. */
static int spmv_value_index(const double *data, int64_t nnz, SPMV_CODE **codes_out,
                            double **table_out)
{
    uint64_t *bits = spmv_alloc(sizeof(uint64_t) * (size_t)nnz);
    if (!bits) return 0;
    memcpy(bits, data, sizeof(uint64_t) * (size_t)nnz);
    qsort(bits, (size_t)nnz, sizeof(uint64_t), spmv_cmp_u64);
    int64_t n = 0;
    for (int64_t k = 0; k < nnz; k++)
        if (k == 0 || bits[k] != bits[n - 1]) bits[n++] = bits[k];
    if (n > (int64_t)((SPMV_CODE)-1) + 1) {
        free(bits);
        spmv_fail("too many distinct values for the value index codes");
        return 0;
    }
    SPMV_CODE *codes = spmv_alloc(sizeof(SPMV_CODE) * (size_t)nnz);
    double *table = spmv_alloc(sizeof(double) * (size_t)(n ? n : 1));
    if (!codes || !table) { free(bits); free(codes); free(table); return 0; }
    memcpy(table, bits, sizeof(double) * (size_t)n);
    for (int64_t k = 0; k < nnz; k++) {
        uint64_t v;
        memcpy(&v, &data[k], sizeof v);
        const uint64_t *hit = bsearch(&v, bits, (size_t)n, sizeof(uint64_t), spmv_cmp_u64);
        codes[k] = (SPMV_CODE)(hit - bits);
    }
    free(bits);
    *codes_out = codes;
    *table_out = table;
    return 1;
}
