/* example.h — the worked example of screen 6: the blog's "painful example by hand" of a
 * convolution and its low-rank (separable) approximation, computed for real (pure: no curses).
 *
 * Contract:
 *  - Input X is in_h × in_w (3..EX_MAX_IN), the kernel K is 3 × 3; "convolution" is the deep-learning
 *    kind (cross-correlation, no padding): out[i][j] = Σ_{a,b} K[a][b]·X[i·s+a][j·s+b].
 *  - ex_compute takes the SVD of K with GSL (K = Σ s_k u_k v_kᵀ, s descending, each u_k's
 *    largest-magnitude entry made positive so the display is stable) and fills every derived number:
 *    the full and the rank-r outputs, the rank-r kernel, and for the current window the nine
 *    products, the column pass (u_k · each window column) and the row pass.
 *  - Multiply counts: direct convolution kh·kw per output; the separable form done over the whole
 *    image is r·(out_h·in_w·kh + out_h·out_w·kw) (the column pass is shared by every window of a
 *    row, which is why it pays as the window slides), i.e. r·(kh + kw) per output when amortised.
 */
#ifndef RANKSCOPE_UI_EXAMPLE_H
#define RANKSCOPE_UI_EXAMPLE_H

#define EX_MAX_IN 8
#define EX_K 3
#define EX_MAX_OUT EX_MAX_IN

typedef struct ex_state {
    /* inputs the user edits */
    int in_h, in_w;
    double x[EX_MAX_IN][EX_MAX_IN];
    double k[EX_K][EX_K];
    int stride; /* 1 or 2 */
    int pos;    /* window index, row-major over the output positions */
    int rank;   /* 1..EX_K */
    /* derived by ex_compute */
    int ok;                         /* 0 when GSL failed (never for a 3×3) */
    double s[EX_K];                 /* singular values, descending */
    double u[EX_K][EX_K];           /* u[k][i]: i-th entry of the k-th left vector */
    double v[EX_K][EX_K];           /* v[k][j] */
    double k_low[EX_K][EX_K];       /* Σ_{k<rank} s_k u_k v_kᵀ */
    int out_h, out_w, n_pos;
    double out_full[EX_MAX_OUT][EX_MAX_OUT];
    double out_low[EX_MAX_OUT][EX_MAX_OUT];
    int win_r, win_c;               /* top-left of the current window in X */
    double prod[EX_K][EX_K];        /* K[a][b] · X[win_r+a][win_c+b] */
    double win_full;                /* Σ prod */
    double col_pass[EX_K][EX_K];    /* col_pass[k][b] = Σ_a u_k[a] · X[win_r+a][win_c+b] */
    double row_pass[EX_K];          /* row_pass[k] = Σ_b s_k v_k[b] · col_pass[k][b] */
    double win_low;                 /* Σ_{k<rank} row_pass[k] */
    long mults_direct;              /* whole output */
    long mults_low;                 /* whole output, separable, shared column pass */
} ex_state;

/* The default example: X 5×5 and K = [[1,0,-1],[0,1,0],[-1,0,1]] (singular values 2, 1, 0), chosen
 * so the original kernel gives -2 at the top-left and its rank-1 approximation gives 0. */
void ex_default(ex_state *ex);
/* Multiplies per output of the separable form once the window slides: the column pass over the
 * `stride` columns that enter plus the row pass, for each kept rank. */
int ex_mults_amortised(const ex_state *ex);

/* Recompute every derived field from x, k, stride, pos, rank (clamping pos and rank). */
int ex_compute(ex_state *ex);

#endif
