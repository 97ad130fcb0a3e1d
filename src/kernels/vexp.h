/* Exponentials over rows (softmax, log-sum-exp, cross-entropy gradients, attention
 * weights, the gates of SiLU and GELU), eight at a time with AVX2+FMA when the CPU has them: a
 * Cephes-style range reduction and polynomial, within 2 ulp of expf, with NaN kept NaN and -inf
 * mapped to 0. Elements past the last multiple of 8 (and every element on CPUs without AVX2) use
 * expf. An element's value depends only on its position in the row, never on timing. */
#ifndef MT_KERNELS_VEXP_H
#define MT_KERNELS_VEXP_H

/* y[i] = exp(x[i] - shift); y may be x. */
void mt_exp_shift(float *y, const float *x, int n, float shift);
/* y[i] = exp(x[i] - shift) and their sum in float (eight lanes, then the tail); y may
 * be x. */
float mt_exp_shift_store_sum(float *y, const float *x, int n, float shift);
/* Sum of a[i]·b[i] in float: sixteen lanes with FMA, then the tail. */
float mt_dot(const float *a, const float *b, int n);
/* Sum of a[i]·b[i]·c[i] (c NULL: of a[i]·b[i]), products and sum in double: the norms'
 * sums of squares and their backward dot products. */
double mt_dot3_f64(const float *a, const float *b, const float *c, int n);
/* Sum over i of exp(x[i] - shift), accumulated in double. */
double mt_exp_shift_sum(const float *x, int n, float shift);
/* y[i] = 1 / (1 + exp(-x[i])) (the logistic function); y may be x. */
void mt_sigmoid(float *y, const float *x, int n);
/* The index of the first largest element (n >= 1), as a scan keeping the first strict
 * maximum finds it. A row with NaNs gives an index in range, not a specified one. */
int mt_row_argmax(const float *x, int n);
/* The largest element (NaN-free rows; n >= 1). */
float mt_row_max(const float *x, int n);

#endif
