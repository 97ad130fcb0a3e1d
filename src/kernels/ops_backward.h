/* Backward (vector-Jacobian) kernels of the forward ops in kernels/ops.h. */
#ifndef MT_KERNELS_OPS_BACKWARD_H
#define MT_KERNELS_OPS_BACKWARD_H

/* y = x / rms(x) * w. Given dy, writes dx (= or += when accumulate; dx may alias dy) and adds dw +=
 * dy·x̂ when dw is not NULL. w == NULL means unit weight. */
void mt_rmsnorm_backward(float *dx, float *dw, const float *x, const float *w, const float *dy,
                         int n, float eps, int accumulate);

/* Undoes mt_rope's rotation on a gradient (rotation by the opposite angle). */
void mt_rope_backward(float *dx, int dim, int pos, float base, float inv_scale, int neox);

/* act = f(gate)·up; given dact writes dgate and dup. */
void mt_silu_mul_backward(float *dgate, float *dup, const float *gate, const float *up,
                          const float *dact, int n);
void mt_gelu_tanh_mul_backward(float *dgate, float *dup, const float *gate, const float *up,
                               const float *dact, int n);

/* Log-softmax statistics of one logits row: returns log(sum(exp(x))). */
float mt_logsumexp(const float *x, int n);
/* dlogits = coef · (onehot(target) − softmax(x)) written over x (lse from mt_logsumexp). */
void mt_xent_grad_row(float *x, int n, int target, float lse, float coef);

#endif
