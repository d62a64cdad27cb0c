/* Everything the low-bit Cython module calls: k-bit x int8 and ternary popcount GEMMs. */
#ifndef QT_LOWBIT_ALL_H
#define QT_LOWBIT_ALL_H
#include "qt_cpu.h"
#include "qt_lowbit.h"
#include "qt_tern.h"
#endif
