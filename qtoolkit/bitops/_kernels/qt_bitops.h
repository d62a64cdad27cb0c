/* Everything the Cython layer calls: CPU probing, packing, the GEMM and the binary
 * convolution's packing, im2col and epilogue. */
#ifndef QT_BITOPS_H
#define QT_BITOPS_H
#include "qt_cpu.h"
#include "qt_pack.h"
#include "qt_gemm.h"
#include "qt_conv.h"
#endif
