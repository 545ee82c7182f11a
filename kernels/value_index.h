/* ---- value index: values as SPMV_CODE codes into a table of distinct values ---- */
#ifndef SPMV_CODE
#define SPMV_CODE uint16_t
#endif

/* Values ordered by their bytes: any order serves, as long as it is one. */
static int spmv_cmp_bytes(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(spmv_val));
}

/* Distinct values compared bit for bit (so -0.0 and NaN payloads survive),
   of any value type.  Returns 0 (and sets the error) when they do not fit
   SPMV_CODE. */
static int spmv_value_index(const spmv_val *data, int64_t nnz, SPMV_CODE **codes_out,
                            spmv_val **table_out)
{
    spmv_val *table = spmv_alloc(sizeof(spmv_val) * (size_t)(nnz ? nnz : 1));
    if (!table) return 0;
    memcpy(table, data, sizeof(spmv_val) * (size_t)nnz);
    qsort(table, (size_t)nnz, sizeof(spmv_val), spmv_cmp_bytes);
    int64_t n = 0;
    for (int64_t k = 0; k < nnz; k++)
        if (k == 0 || spmv_cmp_bytes(&table[k], &table[n - 1]) != 0) table[n++] = table[k];
    if (n > (int64_t)((SPMV_CODE)-1) + 1) {
        free(table);
        spmv_fail("too many distinct values for the value index codes");
        return 0;
    }
    SPMV_CODE *codes = spmv_alloc(sizeof(SPMV_CODE) * (size_t)nnz);
    if (!codes) { free(table); return 0; }
    for (int64_t k = 0; k < nnz; k++) {
        const spmv_val *hit = bsearch(&data[k], table, (size_t)n, sizeof(spmv_val), spmv_cmp_bytes);
        codes[k] = (SPMV_CODE)(hit - table);
    }
    *codes_out = codes;
    *table_out = table;
    return 1;
}
