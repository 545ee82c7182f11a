/* ---- common: types, errors, partitions (shared by every spmvtune kernel) ---- */
/* Value type of data, x and y (SPMV_VALUE): double, float, double complex or
   float complex (then SPMV_COMPLEX is 1 and SPMV_CONJ the conjugate). */
#ifndef SPMV_VALUE
#define SPMV_VALUE double
#endif
#ifndef SPMV_COMPLEX
#define SPMV_COMPLEX 0
#endif
#if SPMV_COMPLEX
#include <complex.h>
#else
#undef SPMV_CONJ
#define SPMV_CONJ(v) (v)
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Index type of the input CSR arrays (indptr, indices): int32_t or int64_t. */
#ifndef SPMV_INDEX
#define SPMV_INDEX int32_t
#endif
typedef SPMV_INDEX spmv_idx;
typedef SPMV_VALUE spmv_val;

/* The k-th value of a plan: through the value index (p->codes into
   p->table) when the kernel keeps one, else p->data. */
#if defined(SPMV_VALUE_INDEX) && SPMV_VALUE_INDEX
#define SPMV_VAL(p, k) ((p)->table[(p)->codes[k]])
#else
#define SPMV_VAL(p, k) ((p)->data[k])
#endif

/* This thread's number inside a parallel region (0 without OpenMP). */
static inline int spmv_thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static char spmv_error_buf[256];

/* Why the last prepare returned NULL ("" if it did not). */
const char *SPMV_NAME(last_error)(void) { return spmv_error_buf; }

static void *spmv_fail(const char *msg)
{
    snprintf(spmv_error_buf, sizeof spmv_error_buf, "%s", msg);
    return NULL;
}

static void *spmv_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) spmv_fail("out of memory");
    return p;
}

static int spmv_threads(int threads)
{
#ifdef _OPENMP
    return threads > 0 ? threads : omp_get_max_threads();
#else
    (void)threads;
    return 1;
#endif
}

/* Row bounds of nparts partitions of about equal cost nnz + rows (or equal
   rows when by_nnz is 0): bounds[p] .. bounds[p+1] - 1 belong to part p. */
static inline void spmv_row_partition(int64_t n_rows, const spmv_idx *indptr, int nparts, int by_nnz,
                               int64_t *bounds)
{
    double total = (double)indptr[n_rows] + (double)n_rows;
    int64_t r = 0;
    bounds[0] = 0;
    for (int p = 1; p < nparts; p++) {
        if (!by_nnz) { bounds[p] = (int64_t)((double)n_rows * p / nparts + 0.5); continue; }
        double target = total * p / nparts;
        while (r < n_rows && (double)indptr[r] + (double)r < target) r++;
        bounds[p] = r;
    }
    bounds[nparts] = n_rows;
}
