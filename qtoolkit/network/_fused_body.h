/* The kernels of _fused_kernels.h for one floating type: included once per type with
 * QT_T (the type), QT_SUF (the name suffix), QT_MAGIC (1.5 * 2^(p-1)), QT_LIMIT (2^(p-2)),
 * QT_TMAX (the type's max) and QT_RINT (libm's rint for the type) defined. */

#define QT_CAT_(a, b) a##_##b
#define QT_CAT(a, b) QT_CAT_(a, b)
#define QT_NAME(x) QT_CAT(x, QT_SUF)

static inline QT_T QT_NAME(qt_clip)(QT_T x, QT_T lo, QT_T hi)
{
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

/* Code of one value: clip(rint(v / s) + z, qmin, qmax); |v / s| is clamped to QT_LIMIT first
 * (where the add-and-subtract rint is exact), which the clip makes invisible. */
static inline QT_T QT_NAME(qt_code)(QT_T v, QT_T s, QT_T z, QT_T fqmin, QT_T fqmax)
{
    QT_T x = v / s;
    x = x < -(QT_T)QT_LIMIT ? -(QT_T)QT_LIMIT : x;
    x = x > (QT_T)QT_LIMIT ? (QT_T)QT_LIMIT : x;
    QT_T c = ((x + (QT_T)QT_MAGIC) - (QT_T)QT_MAGIC) + z;
    return QT_NAME(qt_clip)(c, fqmin, fqmax);
}

/* min, max of p[0..n) and whether all are finite (n >= 1). */
static inline int QT_NAME(qt_minmax)(const QT_T *p, int64_t n, QT_T *mn_out, QT_T *mx_out)
{
    QT_T mn[8], mx[8];
    int bad = 0;
    for (int l = 0; l < 8; l++) mn[l] = mx[l] = p[0];
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int l = 0; l < 8; l++) {
            QT_T v = p[i + l];
            bad |= !(v - v == 0);
            mn[l] = v < mn[l] ? v : mn[l];
            mx[l] = v > mx[l] ? v : mx[l];
        }
    }
    for (; i < n; i++) {
        QT_T v = p[i];
        bad |= !(v - v == 0);
        mn[0] = v < mn[0] ? v : mn[0];
        mx[0] = v > mx[0] ? v : mx[0];
    }
    for (int l = 1; l < 8; l++) {
        mn[0] = mn[l] < mn[0] ? mn[l] : mn[0];
        mx[0] = mx[l] > mx[0] ? mx[l] : mx[0];
    }
    *mn_out = mn[0];
    *mx_out = mx[0];
    return bad;
}

#ifndef QT_MINMAX
#define QT_MINMAX QT_NAME(qt_minmax)
#endif
#ifndef QT_CODES_BLOCK
#define QT_CODES_BLOCK QT_NAME(qt_codes_block)
#endif
#ifndef QT_ERRORS_BLOCK
#define QT_ERRORS_BLOCK QT_NAME(qt_errors_block)
#endif

static int QT_NAME(qt_uniform_stats)(const QT_T *w, int64_t rows, int64_t k, int64_t g, int qmin,
                                     int qmax, int mode, QT_T *scale, QT_T *zero, int64_t *cmin,
                                     int64_t *cmax)
{
    const int64_t ng = k / g;
    const QT_T fqmin = (QT_T)qmin, fqmax = (QT_T)qmax, half = (QT_T)(QT_TMAX) / 2;
    int bad = 0;
    int64_t lo_code = qmax, hi_code = qmin;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < ng; j++) {
            QT_T mn, mx, s, z = 0;
            bad |= QT_MINMAX(w + r * k + j * g, g, &mn, &mx);
            QT_T hi = mx > 0 ? mx : 0, lo = mn < 0 ? mn : 0;
            if (mode == QT_MODE_SYMMETRIC) {
                s = (mx > -mn ? mx : -mn) / fqmax;
            } else if (mode == QT_MODE_UNSIGNED) {
                s = hi / fqmax;
            } else {
                QT_T two = (hi > half || lo < -half) ? (QT_T)2 : (QT_T)1;
                s = ((hi / two - lo / two) / (QT_T)(qmax - qmin)) * two;
            }
            if (!(s > 0)) s = 1;
            if (mode == QT_MODE_ASYMMETRIC) {
                z = QT_NAME(qt_clip)(QT_RINT(fqmin - lo / s), fqmin, fqmax);
                zero[r * ng + j] = z;
            }
            scale[r * ng + j] = s;
            int64_t c0 = (int64_t)QT_NAME(qt_code)(mn, s, z, fqmin, fqmax);
            int64_t c1 = (int64_t)QT_NAME(qt_code)(mx, s, z, fqmin, fqmax);
            lo_code = c0 < lo_code ? c0 : lo_code;
            hi_code = c1 > hi_code ? c1 : hi_code;
        }
    }
    *cmin = lo_code;
    *cmax = hi_code;
    return bad;
}

/* Codes minus the offset (q8) and reconstructions (rec) of p[0..n); returns 1 if one overflows. */
static inline int QT_NAME(qt_codes_block)(const QT_T *p, int64_t n, QT_T s, QT_T z, QT_T fqmin,
                                          QT_T fqmax, QT_T fo, QT_T *rec, uint8_t *q8)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        QT_T c = QT_NAME(qt_code)(p[i], s, z, fqmin, fqmax);
        QT_T v = (c - z) * s;
        rec[i] = v;
        bad |= !(v - v == 0);
        q8[i] = (uint8_t)(int32_t)(c - fo);
    }
    return bad;
}

/* e += sum (p - rec)^2, f += sum p^2, in double over 8 lanes. */
static inline void QT_NAME(qt_errors_block)(const QT_T *p, const QT_T *rec, int64_t n, double *e,
                                            double *f)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int l = 0; l < 8; l++) {
            double a = (double)p[i + l], d = a - (double)rec[i + l];
            e[l] += d * d;
            f[l] += a * a;
        }
    }
    for (; i < n; i++) {
        double a = (double)p[i], d = a - (double)rec[i];
        e[0] += d * d;
        f[0] += a * a;
    }
}

static int QT_NAME(qt_uniform_codes)(const QT_T *w, int64_t rows, int64_t k, int64_t g, int qmin,
                                     int qmax, int mode, const QT_T *scale, const QT_T *zero,
                                     int64_t offset, int bits, uint8_t *out, double *sq,
                                     double *ref)
{
    const int64_t ng = k / g;
    const QT_T fqmin = (QT_T)qmin, fqmax = (QT_T)qmax, fo = (QT_T)offset;
    QT_T rec[QT_FUSED_BLOCK];
    uint8_t q8[QT_FUSED_BLOCK];
    double e[8] = {0}, f[8] = {0};
    qt_stream st = {out, 0, 0};
    int bad = 0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < ng; j++) {
            const QT_T s = scale[r * ng + j];
            const QT_T z = mode == QT_MODE_ASYMMETRIC ? zero[r * ng + j] : (QT_T)0;
            for (int64_t b0 = 0; b0 < g; b0 += QT_FUSED_BLOCK) {
                const QT_T *p = w + r * k + j * g + b0;
                const int64_t n = g - b0 < QT_FUSED_BLOCK ? g - b0 : QT_FUSED_BLOCK;
                bad |= QT_CODES_BLOCK(p, n, s, z, fqmin, fqmax, fo, rec, q8);
                QT_ERRORS_BLOCK(p, rec, n, e, f);
                qt_stream_put(&st, q8, n, bits);
            }
        }
    }
    qt_stream_flush(&st);
    *sq = ((e[0] + e[1]) + (e[2] + e[3])) + ((e[4] + e[5]) + (e[6] + e[7]));
    *ref = ((f[0] + f[1]) + (f[2] + f[3])) + ((f[4] + f[5]) + (f[6] + f[7]));
    return bad;
}

#undef QT_MINMAX
#undef QT_CODES_BLOCK
#undef QT_ERRORS_BLOCK
#undef QT_NAME
#undef QT_CAT
#undef QT_CAT_
