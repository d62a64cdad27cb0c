/* Exact weighted 1-D k-means by the Lagrangian relaxation of the number of clusters.
 *
 * Data: n sorted distinct values with positive weights, summarised by prefix
 * sums P[t] = (sum of w, sum of w (x - shift), sum of w (x - shift)^2) over
 * the first t values (P[0] = 0), so that the squared error of the cluster of
 * values j .. t - 1 is  C(j, t) = q - s^2 / w  with the differences of P.
 *
 * 1. For a penalty lambda > 0, the programme F(t) = min_{j < t} F(j) + C(j, t)
 *    + lambda (F(0) = 0) gives a partition minimising  error + lambda * clusters.
 *    C satisfies the quadrangle inequality, so for two candidate starts
 *    j1 < j2 the set of t where j2 is strictly better is a suffix: a deque of
 *    candidates, each owning an interval of t, solves the programme; the
 *    boundary between the newest candidate and the last one is found by
 *    galloping (exponential then binary search).
 * 2. The optimal error D(m) is convex in m, so every m on its lower hull is
 *    reached by some lambda. The search keeps a bracket m_a < k < m_b of
 *    solved penalties and proposes lambda from a power-law model of D
 *    through the bracket (a Newton step), or the slope of the chord
 *    (D(m_a) - D(m_b)) / (m_b - m_a) when the model stalls.
 * 3. When the chord penalty returns m_a or m_b, both partitions are optimal
 *    for it, and so is every m in between (D is linear there): a partition
 *    with exactly k clusters is spliced from the two (the exchange argument
 *    of the quadrangle inequality: a cluster of one partition that strictly
 *    contains a cluster of the other is swapped for the crossing pair).
 *
 * Prior validation assumed (n >= 1, 1 <= k <= n). The functions allocate
 * their own O(n) work space and return -1 if that fails.
 */
#ifndef QT_KMEANS1D_LAMBDA_H
#define QT_KMEANS1D_LAMBDA_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double w, s, q;
} qt_km_pref;

/* Squared error of the cluster of values j .. t - 1 (j < t). */
static inline double qt_km_cost(const qt_km_pref *P, ptrdiff_t j, ptrdiff_t t)
{
    const double w = P[t].w - P[j].w;
    const double s = P[t].s - P[j].s;
    const double c = (P[t].q - P[j].q) - s * s / w;
    return c > 0.0 ? c : 0.0;
}

/* Compensated (Kahan) prefix sums of the weights and of the moments centred
 * on ``shift``; P has n + 1 entries. */
static void qt_km_prefix(const double *x, const double *w, ptrdiff_t n, double shift,
                         qt_km_pref *P)
{
    double sw = 0.0, s1 = 0.0, s2 = 0.0, cw = 0.0, c1 = 0.0, c2 = 0.0, d, y, t;
    ptrdiff_t i;
    P[0].w = P[0].s = P[0].q = 0.0;
    for (i = 0; i < n; i++) {
        d = x[i] - shift;
        y = w[i] - cw;
        t = sw + y;
        cw = (t - sw) - y;
        sw = t;
        y = w[i] * d - c1;
        t = s1 + y;
        c1 = (t - s1) - y;
        s1 = t;
        y = w[i] * d * d - c2;
        t = s2 + y;
        c2 = (t - s2) - y;
        s2 = t;
        P[i + 1].w = sw;
        P[i + 1].s = s1;
        P[i + 1].q = s2;
    }
}

typedef struct {
    double *F;   /* (n + 1) penalised optimum of the first t values */
    int32_t *par; /* (n + 1) start of the last cluster of the first t values */
    int32_t *cnt; /* (n + 1) clusters of that optimum */
    int32_t *qj;  /* (n + 1) deque: candidate starts */
    int32_t *qs;  /* (n + 1) deque: first t each candidate owns */
    double *qv;   /* (n + 1) deque: each candidate's value at the first t it owns */
} qt_km_work;

/* new candidate t strictly better than candidate jb for the first P values
 * (vp: the new candidate's value there) */
#define QT_KM_BETTER(P_) ((vp = Fn + qt_km_cost(P, t, (P_))) < F[jb] + qt_km_cost(P, jb, (P_)))

/* Penalised programme at ``lam``; returns the number of clusters of the
 * optimum found (ties go to the earlier cluster start). */
static ptrdiff_t qt_km_penalized(const qt_km_pref *P, ptrdiff_t n, double lam,
                                 const qt_km_work *ws)
{
    double *F = ws->F;
    int32_t *par = ws->par, *cnt = ws->cnt, *qj = ws->qj, *qs = ws->qs;
    double *qv = ws->qv;
    ptrdiff_t head = 0, tail = 1, t, j, jb, s, lo, hi, mid, step, g, p, last_h = 1, last_t = 0;
    double Fn, vb, vn, vp = 0.0, vh = 0.0;
    F[0] = 0.0;
    cnt[0] = 0;
    par[0] = 0;
    qj[0] = 0;
    qs[0] = 1;
    qv[0] = qt_km_cost(P, 0, 1);
    for (t = 1; t <= n; t++) {
        while (tail - head >= 2 && qs[head + 1] <= t)
            head++;
        j = qj[head];
        F[t] = F[j] + qt_km_cost(P, j, t) + lam;
        par[t] = (int32_t)j;
        cnt[t] = cnt[j] + 1;
        if (t == n)
            break;
        /* candidate start t, valid from t + 1 on */
        Fn = F[t];
        for (;;) {
            if (tail == head) {
                qj[tail] = (int32_t)t;
                qs[tail] = (int32_t)(t + 1);
                qv[tail] = Fn + qt_km_cost(P, t, t + 1);
                tail++;
                break;
            }
            jb = qj[tail - 1];
            s = qs[tail - 1];
            /* the tail's value at its first position was stored when it entered */
            if (s < t + 1) {
                s = t + 1;
                vb = F[jb] + qt_km_cost(P, jb, s);
            } else {
                vb = qv[tail - 1];
            }
            vn = Fn + qt_km_cost(P, t, s);
            if (vn < vb) {
                tail--;
                continue;
            }
            /* first position in (s, n] where the new candidate is strictly better:
             * gallop from a guess (the previous boundary moved by the same
             * amount as the candidate), then bisect */
            g = last_h + (t - last_t);
            if (g <= s)
                g = s + 1;
            if (g > n)
                g = n;
            if (QT_KM_BETTER(g)) {
                hi = g;
                vh = vp;
                lo = s;
                step = 1;
                while (hi - step > lo) {
                    if (!QT_KM_BETTER(hi - step)) {
                        lo = hi - step;
                        break;
                    }
                    hi -= step;
                    vh = vp;
                    step *= 2;
                }
            } else {
                lo = g;
                hi = -1;
                step = 1;
                while (lo < n) {
                    p = lo + step;
                    if (p > n)
                        p = n;
                    if (QT_KM_BETTER(p)) {
                        hi = p;
                        vh = vp;
                        break;
                    }
                    lo = p;
                    step *= 2;
                }
            }
            if (hi >= 0) {
                while (hi - lo > 1) {
                    mid = lo + (hi - lo) / 2;
                    if (QT_KM_BETTER(mid)) {
                        hi = mid;
                        vh = vp;
                    } else {
                        lo = mid;
                    }
                }
                qj[tail] = (int32_t)t;
                qs[tail] = (int32_t)hi;
                qv[tail] = vh;
                tail++;
                last_h = hi;
                last_t = t;
            }
            break;
        }
    }
    return cnt[n];
}

/* Cluster starts of the optimum found last: out[0] = 0 < ... < out[m] = n. */
static void qt_km_backtrack(const qt_km_work *ws, ptrdiff_t n, ptrdiff_t m, int32_t *out)
{
    ptrdiff_t t = n, c = m;
    out[c] = (int32_t)n;
    while (c > 0) {
        t = ws->par[t];
        out[--c] = (int32_t)t;
    }
}

/* Splice a partition of exactly k clusters from the starts A (ka clusters)
 * and B (kb clusters), both optimal for one penalty, ka < k < kb. */
static void qt_km_splice(const int32_t *A, ptrdiff_t ka, const int32_t *B, ptrdiff_t kb,
                         ptrdiff_t k, int64_t *out)
{
    /* beta(a) = max{b : A[b] <= B[a]}; f(a) = a - beta(a) rises by at most one
     * per step from f(0) = 0 to f(kb) = kb - ka. At the first a with
     * f(a) = k - ka + 1, beta(a) = beta(a - 1) = b, so the cluster
     * B[a - 1] .. B[a] lies inside A[b] .. A[b + 1]. The spliced partition
     * B[0..a-1] + A[b+1..ka] has (a - 1) + ka - b = k clusters. */
    ptrdiff_t a, b = 0, target = k - ka + 1, i, o = 0;
    for (a = 0; a <= kb; a++) {
        while (b + 1 <= ka && A[b + 1] <= B[a])
            b++;
        if (a - b == target)
            break;
    }
    for (i = 0; i <= a - 1; i++)
        out[o++] = B[i];
    for (i = b + 1; i <= ka; i++)
        out[o++] = A[i];
}

/* First penalty of the search: lambda = -D'(k) = 2 D(k) / k with the
 * high-resolution estimate D(k) = W (int p^(1/3))^3 / (12 k^2) (Panter and
 * Dite), the integral read off about 2k bins of equal weight count (at least
 * 8 values each); 2 D(1) / k^3 when the data are too few for bins. */
static double qt_km_first_penalty(const qt_km_pref *P, ptrdiff_t n, ptrdiff_t k, double D1)
{
    ptrdiff_t B = 2 * k, b, lo, hi;
    double W = P[n].w, integral = 0.0, wb, lb, dk, lam;
    if (B > n / 8)
        B = n / 8;
    if (B >= 2) {
        for (b = 0; b < B; b++) {
            lo = (n * b) / B;
            hi = (n * (b + 1)) / B;
            wb = P[hi].w - P[lo].w;
            /* width of the bin: means of its first and last value, from the sums */
            lb = (P[hi].s - P[hi - 1].s) / (P[hi].w - P[hi - 1].w) -
                 (P[lo + 1].s - P[lo].s) / (P[lo + 1].w - P[lo].w);
            if (wb > 0.0 && lb > 0.0)
                integral += cbrt(wb / W) * cbrt(lb * lb);
        }
        dk = W * integral * integral * integral / (12.0 * (double)k * (double)k);
        lam = 2.0 * dk / (double)k;
        if (lam > 0.0 && isfinite(lam))
            return lam;
    }
    return 2.0 * D1 / ((double)k * (double)k * (double)k);
}

/* Error of a Lloyd local optimum with m clusters (equal-weight initial
 * partition, at most 128 iterations; each costs O(m log n) on the prefix
 * sums). xc holds the values minus the shift of P; st has m + 1 entries. */
static double qt_km_lloyd_error(const qt_km_pref *P, const double *xc, ptrdiff_t n, ptrdiff_t m,
                                ptrdiff_t *st)
{
    ptrdiff_t t, lo, hi, mid, it;
    double W = P[n].w, target, bnd, ca, cb, e = 0.0;
    int changed;
    st[0] = 0;
    st[m] = n;
    for (t = 1; t < m; t++) {
        target = W * (double)t / (double)m;
        lo = 0;
        hi = n;
        while (lo < hi) {
            mid = lo + (hi - lo) / 2;
            if (P[mid].w < target)
                lo = mid + 1;
            else
                hi = mid;
        }
        st[t] = lo;
    }
    for (t = 1; t < m; t++)
        if (st[t] < st[t - 1] + 1)
            st[t] = st[t - 1] + 1;
    for (t = m - 1; t >= 1; t--)
        if (st[t] > st[t + 1] - 1)
            st[t] = st[t + 1] - 1;
    for (it = 0; it < 128; it++) {
        changed = 0;
        for (t = 1; t < m; t++) {
            ca = (P[st[t]].s - P[st[t - 1]].s) / (P[st[t]].w - P[st[t - 1]].w);
            cb = (P[st[t + 1]].s - P[st[t]].s) / (P[st[t + 1]].w - P[st[t]].w);
            bnd = 0.5 * (ca + cb);
            lo = st[t - 1] + 1;
            hi = st[t + 1] - 1;
            while (lo < hi) {
                mid = lo + (hi - lo) / 2;
                if (xc[mid] <= bnd)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo != st[t]) {
                st[t] = lo;
                changed = 1;
            }
        }
        if (!changed)
            break;
    }
    for (t = 0; t < m; t++)
        e += qt_km_cost(P, st[t], st[t + 1]);
    return e;
}

/* Bytes of the work space of qt_km_lambda_in for n values and k clusters. */
static size_t qt_km_lambda_bytes(ptrdiff_t n, ptrdiff_t k)
{
    return (size_t)(n + 1) * (2 * sizeof(double) + 7 * sizeof(int32_t)) +
           (size_t)(k + 2) * sizeof(ptrdiff_t) + 64;
}

/* qt_km_lambda on a caller's work space of qt_km_lambda_bytes(n, k) bytes.
 * lam_io: NULL, or a first penalty to try (> 0; 0: estimate one as qt_km_lambda
 * does), overwritten with the last penalty solved (the one that gave k clusters,
 * or the chord of the hull edge the partition was spliced from). */
static int qt_km_lambda_in(const qt_km_pref *P, const double *xc, ptrdiff_t n, ptrdiff_t k,
                           int64_t *out, void *buf, double *lam_io)
{
    ptrdiff_t *lst = NULL;
    qt_km_work ws;
    int32_t *pa = NULL, *pb = NULL, *pc = NULL, *tmp;
    ptrdiff_t ka, kb, c, i, w0;
    double Da, Db, la, lb, lam, D, slope, l0 = 0.0, l1 = 0.0, fa = 0.0, fb = 0.0;
    ptrdiff_t c0 = 0, c1 = 0;
    int it = 0, mode = 0, side = 0;
    if (k == 1 || k == n) {
        for (i = 0; i <= k; i++)
            out[i] = (k == 1) ? (i == 0 ? 0 : n) : i;
        return 0;
    }
    /* carve the work space: the doubles first, then the ptrdiff_t, then int32 */
    ws.F = (double *)buf;
    ws.qv = ws.F + (n + 1);
    lst = (ptrdiff_t *)(ws.qv + (n + 1));
    ws.par = (int32_t *)(lst + (k + 2));
    ws.cnt = ws.par + (n + 1);
    ws.qj = ws.cnt + (n + 1);
    ws.qs = ws.qj + (n + 1);
    pa = ws.qs + (n + 1);
    pb = pa + (n + 1);
    pc = pb + (n + 1);
    /* bracket: one cluster (lambda = inf) and every value alone (lambda = 0) */
    ka = 1;
    Da = qt_km_cost(P, 0, n);
    la = INFINITY;
    pa[0] = 0;
    pa[1] = (int32_t)n;
    kb = n;
    Db = 0.0;
    lb = 0.0;
    for (i = 0; i <= n; i++)
        pb[i] = (int32_t)i;
    for (;;) {
        /* propose a penalty strictly inside (lb, la). The count falls with
         * lambda roughly as a power (lambda ~ m^-3 by the high-resolution law
         * D ~ m^-2): the first step uses that law; while one side of the
         * bracket is open, a secant on log(count) against log(lambda) through
         * the last two solutions; then regula falsi (Illinois variant) on the
         * same logarithms between the bracket ends. When the bracket is
         * narrow, or a step did not halve it, the chord penalty follows: it
         * always finds a count strictly inside the bracket or proves that
         * the bracket is one edge of the hull. */
        lam = NAN;
        if (mode == 0) {
            if (it == 0 && lam_io != NULL && *lam_io > 0.0 && isfinite(*lam_io)) {
                lam = *lam_io; /* a neighbouring problem's penalty */
            } else if (it == 0) {
                lam = qt_km_first_penalty(P, n, k, Da);
                if (xc != NULL && k + 1 <= n && 8.0 * (double)k * log2((double)n) <= (double)n) {
                    /* small k: the marginal error of the k-th cluster from Lloyd at k -/+ 1 */
                    slope = 0.5 * (qt_km_lloyd_error(P, xc, n, k - 1, lst) -
                                   qt_km_lloyd_error(P, xc, n, k + 1, lst));
                    if (slope > 0.0 && isfinite(slope))
                        lam = slope;
                }
            } else if (lb > 0.0 && isfinite(la)) {
                lam = exp(log(lb) - fb * (log(la) - log(lb)) / (fa - fb));
            } else {
                slope = -1.0 / 3.0;
                if (it >= 2 && c1 != c0 && l1 != l0)
                    slope = (log((double)c1) - log((double)c0)) / (log(l1) - log(l0));
                if (!(slope < -0.05) || !isfinite(slope))
                    slope = -1.0 / 3.0;
                lam = exp(log(l1) + (log((double)k) - log((double)c1)) / slope);
            }
        }
        if (!(lam > lb && lam < la)) {
            mode = 2;
            lam = (Da - Db) / (double)(kb - ka);
        }
        if (!(lam > lb && lam < la)) {
            /* no representable penalty strictly inside: the bracket is one hull edge */
            qt_km_splice(pa, ka, pb, kb, k, out);
            goto done;
        }
        it++;
        c = qt_km_penalized(P, n, lam, &ws);
        D = ws.F[n] - lam * (double)c;
        l0 = l1;
        c0 = c1;
        l1 = lam;
        c1 = c;
        if (c == k) {
            qt_km_backtrack(&ws, n, c, pc);
            for (i = 0; i <= k; i++)
                out[i] = pc[i];
            goto done;
        }
        w0 = kb - ka;
        if (c < k && c >= ka) {
            qt_km_backtrack(&ws, n, c, pc);
            tmp = pa;
            pa = pc;
            pc = tmp;
            ka = c;
            Da = D;
            la = lam;
            fa = log((double)c) - log((double)k);
            if (side == 1)
                fb *= 0.5;
            side = 1;
        } else if (c > k && c <= kb) {
            qt_km_backtrack(&ws, n, c, pc);
            tmp = pb;
            pb = pc;
            pc = tmp;
            kb = c;
            Db = D;
            lb = lam;
            fb = log((double)c) - log((double)k);
            if (side == 2)
                fa *= 0.5;
            side = 2;
        }
        if (mode == 2 && kb - ka == w0) {
            /* the chord penalty reaches only the bracket ends: both are optimal
             * for it, and so is every count in between; splice */
            qt_km_splice(pa, ka, pb, kb, k, out);
            goto done;
        }
        mode = (mode == 0 && 2 * (kb - ka) > w0 && lb > 0.0 && isfinite(la)) || kb - ka <= 4 ? 2 : 0;
    }
done:
    if (lam_io != NULL)
        *lam_io = lam;
    return it;
}

/* Exact optimal starts (k + 1 entries, out[0] = 0, out[k] = n) of k clusters.
 * xc: the values minus the shift of P (NULL: no Lloyd estimate of the first
 * penalty). Returns the number of penalised programmes solved, or -1 if out
 * of memory. */
static int qt_km_lambda(const qt_km_pref *P, const double *xc, ptrdiff_t n, ptrdiff_t k,
                        int64_t *out)
{
    void *buf = malloc(qt_km_lambda_bytes(n, k));
    int it;
    if (!buf)
        return -1;
    it = qt_km_lambda_in(P, xc, n, k, out, buf, NULL);
    free(buf);
    return it;
}

/* Weighted means of the clusters out of the starts, summed directly from the
 * first value of each cluster (exact for clusters of one value). */
static void qt_km_means(const double *x, const double *w, const int64_t *starts, ptrdiff_t k,
                        double *centers)
{
    ptrdiff_t c, i;
    for (c = 0; c < k; c++) {
        const double base = x[starts[c]];
        double sw = 0.0, sx = 0.0;
        for (i = starts[c]; i < starts[c + 1]; i++) {
            sw += w[i];
            sx += w[i] * (x[i] - base);
        }
        centers[c] = base + sx / sw;
    }
}

/* Weighted squared error of sorted values against their nearest codeword of
 * a sorted codebook (a value on a midpoint goes to the lower codeword). */
static double qt_km_inertia(const double *x, const double *w, ptrdiff_t n, const double *centers,
                            ptrdiff_t k)
{
    ptrdiff_t i, c = 0;
    double e = 0.0, comp = 0.0, d, y, t;
    for (i = 0; i < n; i++) {
        while (c + 1 < k && 0.5 * (centers[c] + centers[c + 1]) < x[i])
            c++;
        d = x[i] - centers[c];
        y = w[i] * d * d - comp;
        t = e + y;
        comp = (t - e) - y;
        e = t;
    }
    return e;
}

/* ---- sorting (value, weight) pairs: a stable LSD radix sort on the bits ---- */

typedef struct {
    uint64_t key; /* the value's bits, mapped so that unsigned order is numeric order */
    double w;
} qt_km_rec;

static inline uint64_t qt_km_key(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return (u >> 63) ? ~u : (u | 0x8000000000000000ULL);
}

static inline double qt_km_unkey(uint64_t u)
{
    double v;
    u = (u >> 63) ? (u & 0x7fffffffffffffffULL) : ~u;
    memcpy(&v, &u, sizeof v);
    return v;
}

#define QT_KM_RADIX_BITS(n) ((n) > 65536 ? 11 : 8)
/* counters of qt_km_radix: one histogram of 2^bits per digit of 64 bits */
#define QT_KM_RADIX_HIST(bits) ((size_t)((64 + (bits) - 1) / (bits)) << (bits))

/* Stable sort of a[0..n) by key (b: scratch of n records, hist: QT_KM_RADIX_HIST
 * counters); digits on which every key agrees are skipped. Returns a or b,
 * whichever holds the result. */
static qt_km_rec *qt_km_radix(qt_km_rec *a, qt_km_rec *b, ptrdiff_t n, int bits, uint32_t *hist)
{
    const int passes = (64 + bits - 1) / bits;
    const uint64_t mask = ((uint64_t)1 << bits) - 1;
    const ptrdiff_t nb = (ptrdiff_t)1 << bits;
    ptrdiff_t i, d;
    int p;
    memset(hist, 0, QT_KM_RADIX_HIST(bits) * sizeof(uint32_t));
    for (i = 0; i < n; i++) {
        const uint64_t k = a[i].key;
        for (p = 0; p < passes; p++)
            hist[((ptrdiff_t)p << bits) + (ptrdiff_t)((k >> (p * bits)) & mask)]++;
    }
    for (p = 0; p < passes; p++) {
        uint32_t *h = hist + ((ptrdiff_t)p << bits), sum = 0, c;
        qt_km_rec *t;
        if (h[(a[0].key >> (p * bits)) & mask] == (uint32_t)n)
            continue; /* one digit value for all keys: the order is unchanged */
        for (d = 0; d < nb; d++) {
            c = h[d];
            h[d] = sum;
            sum += c;
        }
        for (i = 0; i < n; i++)
            b[h[(a[i].key >> (p * bits)) & mask]++] = a[i];
        t = a;
        a = b;
        b = t;
    }
    return a;
}

/* Distinct values with positive weight, sorted, and their summed weights (in
 * input order within a value): m is returned. x, w: n values and weights (w NULL:
 * all ones); ux, uw: n outputs; recs: 2 n records; hist: QT_KM_RADIX_HIST. */
static ptrdiff_t qt_km_distinct(const double *x, const double *w, ptrdiff_t n, double *ux,
                                double *uw, qt_km_rec *recs, uint32_t *hist)
{
    ptrdiff_t i, m = 0, c = 0;
    qt_km_rec *s;
    for (i = 0; i < n; i++) {
        const double wi = w ? w[i] : 1.0;
        if (wi > 0.0) {
            recs[c].key = qt_km_key(x[i] == 0.0 ? 0.0 : x[i]); /* -0 and +0 are one value */
            recs[c].w = wi;
            c++;
        }
    }
    if (c == 0)
        return 0;
    s = qt_km_radix(recs, recs + n, c, QT_KM_RADIX_BITS(c), hist);
    for (i = 0; i < c; i++) {
        if (m > 0 && s[i].key == s[i - 1].key) {
            uw[m - 1] += s[i].w;
        } else {
            ux[m] = qt_km_unkey(s[i].key);
            uw[m] = s[i].w;
            m++;
        }
    }
    return m;
}

/* ---- one problem per row ---- */

/* Work space of one thread for rows of n values and k clusters. */
typedef struct {
    double *ux, *uw, *uc;
    qt_km_pref *P;
    int64_t *starts;
    qt_km_rec *recs; /* 2 n, for rows that need sorting */
    uint32_t *hist;
    void *lam;
} qt_km_rowwork;

static void qt_km_rowwork_free(qt_km_rowwork *r)
{
    free(r->ux);
    free(r->uw);
    free(r->uc);
    free(r->P);
    free(r->starts);
    free(r->recs);
    free(r->hist);
    free(r->lam);
}

/* Returns 0, or -1 (and nothing allocated) when out of memory. */
static int qt_km_rowwork_alloc(qt_km_rowwork *r, ptrdiff_t n, ptrdiff_t k, int sorting)
{
    const size_t nn = (size_t)(n > 0 ? n : 1);
    r->ux = (double *)malloc(nn * sizeof(double));
    r->uw = (double *)malloc(nn * sizeof(double));
    r->uc = (double *)malloc(nn * sizeof(double));
    r->P = (qt_km_pref *)malloc((nn + 1) * sizeof(qt_km_pref));
    r->starts = (int64_t *)malloc((size_t)(k + 1) * sizeof(int64_t));
    r->recs = sorting ? (qt_km_rec *)malloc(2 * nn * sizeof(qt_km_rec)) : NULL;
    r->hist = sorting ? (uint32_t *)malloc(QT_KM_RADIX_HIST(QT_KM_RADIX_BITS(n)) * 4) : NULL;
    r->lam = malloc(qt_km_lambda_bytes(n, k));
    if (!r->ux || !r->uw || !r->uc || !r->P || !r->starts || !r->lam ||
        (sorting && (!r->recs || !r->hist))) {
        qt_km_rowwork_free(r);
        memset(r, 0, sizeof *r);
        return -1;
    }
    return 0;
}

/* Optimal codebook of the m distinct values ux (weights uw) in r: 0, or -2 when
 * m < k. lam_io: as for qt_km_lambda_in. */
static int qt_km_fit_distinct(qt_km_rowwork *r, ptrdiff_t m, ptrdiff_t k, double *centers,
                              double *inertia, double *lam_io)
{
    const double *ux = r->ux, *uw = r->uw;
    double sw = 0.0, cw = 0.0, sx = 0.0, cx = 0.0, y, t, shift;
    ptrdiff_t i;
    if (m < k)
        return -2;
    for (i = 0; i < m; i++) {
        y = uw[i] - cw;
        t = sw + y;
        cw = (t - sw) - y;
        sw = t;
        y = uw[i] * ux[i] - cx;
        t = sx + y;
        cx = (t - sx) - y;
        sx = t;
    }
    shift = sx / sw;
    qt_km_prefix(ux, uw, m, shift, r->P);
    for (i = 0; i < m; i++)
        r->uc[i] = ux[i] - shift;
    if (qt_km_lambda_in(r->P, r->uc, m, k, r->starts, r->lam, lam_io) < 0)
        return -1;
    qt_km_means(ux, uw, r->starts, k, centers);
    *inertia = qt_km_inertia(ux, uw, m, centers, k);
    return 0;
}

/* One row sorted ascending (duplicates allowed) with its weights in the same
 * order (NULL: all ones; zero weights are dropped). 0, -2 (fewer than k
 * distinct values with positive weight). */
static int qt_km_fit_sorted_in(qt_km_rowwork *r, const double *xs, const double *wsort,
                               ptrdiff_t n, ptrdiff_t k, double *centers, double *inertia,
                               double *lam_io)
{
    ptrdiff_t i, m = 0;
    double wi;
    for (i = 0; i < n; i++) {
        wi = wsort ? wsort[i] : 1.0;
        if (!(wi > 0.0))
            continue;
        if (m > 0 && xs[i] == r->ux[m - 1]) {
            r->uw[m - 1] += wi;
        } else {
            r->ux[m] = xs[i];
            r->uw[m] = wi;
            m++;
        }
    }
    return qt_km_fit_distinct(r, m, k, centers, inertia, lam_io);
}

/* One row in any order with its weights (NULL: all ones): sorted here. */
static int qt_km_fit_unsorted_in(qt_km_rowwork *r, const double *x, const double *w,
                                 ptrdiff_t n, ptrdiff_t k, double *centers, double *inertia,
                                 double *lam_io)
{
    const ptrdiff_t m = qt_km_distinct(x, w, n, r->ux, r->uw, r->recs, r->hist);
    return qt_km_fit_distinct(r, m, k, centers, inertia, lam_io);
}

/* Rows per block of qt_km_fit_rows: a block's rows are solved in order, each
 * search (above QT_KM_WARM_K clusters) starting from the geometric mean of the
 * penalties found for the rows before it. At most QT_KM_WARM_K clusters, the
 * Lloyd estimate of each row is cheap and hits more often. */
#define QT_KM_ROW_BLOCK 16
#define QT_KM_WARM_K 8

/* Every row of X (r, n) row-major: sorted ascending (sorted != 0) or in any
 * order; weights W: NULL (ones), per entry (r, n; in the order of X), or one
 * per column shared by the rows (shared != 0, n values; only with sorted == 0).
 * centers (r, k), inertia (r), status (r): 0, -1 (no memory), -2 (fewer than k
 * distinct values with positive weight). One work space per thread; blocks of
 * QT_KM_ROW_BLOCK rows handed out dynamically. The first row of a block starts
 * its penalty search from the row's own estimate, each later row from the
 * penalty of the row before it (rows of one matrix are alike, so that penalty
 * usually gives k clusters at once). The blocks do not depend on the threads,
 * so neither does any result; each row's codebook is optimal for that row
 * (where several are, which one is returned can depend on the rows before it
 * in its block). */
static void qt_km_fit_rows(const double *X, const double *W, int shared, int sorted,
                           ptrdiff_t r, ptrdiff_t n, ptrdiff_t k, double *centers,
                           double *inertia, int *status, int n_threads)
{
    const ptrdiff_t nblocks = (r + QT_KM_ROW_BLOCK - 1) / QT_KM_ROW_BLOCK;
    ptrdiff_t b;
    (void)n_threads;
#pragma omp parallel num_threads(n_threads) if (n_threads > 1)
    {
        qt_km_rowwork wk;
        const int ok = qt_km_rowwork_alloc(&wk, n, k, !sorted) == 0;
#pragma omp for schedule(dynamic, 1)
        for (b = 0; b < nblocks; b++) {
            const ptrdiff_t end = (b + 1) * QT_KM_ROW_BLOCK < r ? (b + 1) * QT_KM_ROW_BLOCK : r;
            double log_sum = 0.0, lam_row;
            ptrdiff_t i, solved = 0;
            for (i = b * QT_KM_ROW_BLOCK; i < end; i++) {
                const double *w = W == NULL ? NULL : (shared ? W : W + i * n);
                lam_row = (k > QT_KM_WARM_K && solved > 0) ? exp(log_sum / (double)solved) : 0.0;
                if (!ok)
                    status[i] = -1;
                else if (sorted)
                    status[i] = qt_km_fit_sorted_in(&wk, X + i * n, w, n, k, centers + i * k,
                                                    inertia + i, &lam_row);
                else
                    status[i] = qt_km_fit_unsorted_in(&wk, X + i * n, w, n, k,
                                                      centers + i * k, inertia + i, &lam_row);
                if (ok && status[i] == 0 && lam_row > 0.0 && isfinite(lam_row)) {
                    log_sum += log(lam_row);
                    solved++;
                }
            }
        }
        if (ok)
            qt_km_rowwork_free(&wk);
    }
}

#endif
