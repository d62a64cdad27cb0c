/* Everything the Cython layer calls: CPU probing, packing and the GEMM. */
#ifndef QT_BITOPS_H
#define QT_BITOPS_H
#include "qt_cpu.h"
#include "qt_pack.h"
#include "qt_gemm.h"
#endif
