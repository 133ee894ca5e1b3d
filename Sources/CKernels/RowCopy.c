#include "RowCopy.h"

size_t wc_row_copy_count(int h, int w, const wc_window *window, int oh, int ow) {
    const row_copy g = row_copy_of(h, w, window, oh, ow);
    return (size_t)(g.rows * g.pitch);
}
