// OpenBLAS's CBLAS interface (Debian/Ubuntu: libopenblas-dev).
#include <cblas.h>

// LAPACK's Cholesky factorisation and inverse (OpenBLAS exports them), for GPTQ-style error compensation.
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info);
void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info);
