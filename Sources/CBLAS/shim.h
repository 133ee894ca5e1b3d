// OpenBLAS's CBLAS interface (Debian/Ubuntu: libopenblas-dev).
#include <cblas.h>
