#include "kernels/topk.h"

#include <math.h>
#include <string.h>

#include "kernels/vexp.h"

float mt_log_softmax(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    if (!isfinite(mx)) {
        /* No finite logit: nothing has probability mass, so every token is impossible. */
        for (int i = 0; i < n; i++) x[i] = -INFINITY;
        return -INFINITY;
    }
    /* Double accumulation: a 10^5-token sum in float loses the small tail terms. */
    const double sum = mt_exp_shift_sum(x, n, mx);
    /* Subtracting max and log-sum separately keeps large logits (1000 + 0.86) exact to a
     * few ulps of the log-prob rather than of the logit. */
    const float ls = (float)log(sum);
    for (int i = 0; i < n; i++) x[i] = (x[i] - mx) - ls;
    return mx + ls;
}

/* NaN is mapped below -inf's rank by comparing keys: a NaN never displaces anything. */
static int beats(float a, float b) {
    if (isnan(a)) return 0;
    return isnan(b) || a > b;
}

int mt_topk(const float *x, int n, int k, int32_t *idx, float *val) {
    if (k > n) k = n;
    if (k <= 0) return 0;
    int have = 0;
    for (int i = 0; i < n; i++) {
        const float v = x[i];
        /* Most of a vocabulary fails this one comparison against the current k-th best;
         * ties lose, so the lower index stays ahead. */
        if (have == k && !beats(v, val[k - 1])) continue;
        int lo = 0, hi = have;
        while (lo < hi) {
            const int mid = (lo + hi) / 2;
            if (beats(v, val[mid]))
                hi = mid;
            else
                lo = mid + 1;
        }
        const int moved = (have < k ? have : k - 1) - lo;
        if (moved > 0) {
            memmove(val + lo + 1, val + lo, (size_t)moved * sizeof *val);
            memmove(idx + lo + 1, idx + lo, (size_t)moved * sizeof *idx);
        }
        val[lo] = v;
        idx[lo] = i;
        if (have < k) have++;
    }
    return k;
}

int mt_topk_log_softmax(const float *x, int n, int k, int32_t *idx, float *val) {
    const int got = mt_topk(x, n, k, idx, val);
    if (got == 0) return 0;
    const float mx = val[0];
    if (!isfinite(mx)) {
        for (int j = 0; j < got; j++) val[j] = -INFINITY;
        return got;
    }
    const float ls = (float)log(mt_exp_shift_sum(x, n, mx));
    for (int j = 0; j < got; j++) val[j] = (val[j] - mx) - ls;
    return got;
}
