/* Depth-first branch and bound on the knapsack Lagrangian bound (gpuplan/backends/gap_bb.py).
 *
 * Fixed multipliers u give reduced costs w[t][g] = c[t][g] - u[t]; for any complete assignment,
 * cost = sum_t u[t] + sum_g S_g with S_g = sum of w over g's tasks, and S_g >= z_g, the optimum of
 * GPU g's 0-1 knapsack over the tasks still free for it (its assigned tasks forced in, tasks placed
 * elsewhere left out). A node is pruned when sum_g z_g exceeds the budget B = (target - sum u); the
 * pair (t, g) is pruned when forcing t into g (and out of the other knapsacks that used it) lifts the
 * sum above B. Branching takes the free task with the fewest surviving GPUs (ties: largest regret),
 * GPUs in order of their forced bound. A complete
 * assignment within the budget tightens the budget to (its cost - 1 - sum u) and the search goes on,
 * so an exhausted search proves the last plan found (or the caller's target) optimal.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int64_t T, G;
    const double *w;      /* [T, G] reduced costs */
    const int64_t *cost;  /* [T, G] integer costs */
    const uint8_t *ok;    /* [T, G] pairs allowed */
    const int64_t *a;     /* [T, G] integer loads */
    const int64_t *cap;   /* [G] */
    double budget;        /* bound on sum_g z_g */
    double eps;           /* float tolerance of the comparisons with the budget */
    double usum;
    int64_t *gpu_of;      /* [T]: -1 free */
    int64_t *items;       /* [G, T]: tasks allowed on g */
    int64_t *n_items;     /* [G] */
    double *base;         /* [G]: sum of w over g's assigned tasks */
    int64_t *rem;         /* [G]: capacity left */
    double *z;            /* [G] */
    double *inc;          /* [T, G]: g's knapsack value with t forced in (inf: does not fit) */
    uint8_t *insol;       /* [T, G]: t in g's optimal knapsack */
    double *exc;          /* [T, G]: for t in insol, g's knapsack value with t left out */
    double *outpen;       /* [T]: sum over GPUs h using t of exc - z (the cost of t leaving them) */
    double *fwd, *bwd;    /* scratch tables */
    int64_t *best;        /* [T] best plan */
    int64_t best_cost;
    int have_best;
    double *sv;           /* undo stack: per GPU record z, then (inc, exc) per allowed task */
    uint8_t *sf;          /* undo stack: insol per allowed task */
    size_t sv_n, sv_cap, sf_n, sf_cap;
    int oom;
    int64_t nodes, node_limit;
    int64_t max_disc;     /* limited discrepancy search: at most this many non-first choices (-1: none) */
    int cut;              /* a branch was skipped by the discrepancy limit */
    double deadline;
    volatile const uint8_t *stop; /* the caller's stop flag (nonzero: stop now), or NULL */
    int stopped;
} BB;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One knapsack DP row: q[c] = min(p[c], p[c - at] + wt) (q = p below at); separate rows, so the
 * loop vectorizes. */
static void relax(const double *restrict p, double *restrict q, int64_t W, int64_t at, double wt) {
    memcpy(q, p, sizeof(double) * (size_t)(at < W ? at : W));
    for (int64_t c = at; c < W; c++) {
        double v = p[c - at] + wt, u = p[c];
        q[c] = v < u ? v : u;
    }
}

/* Recompute z, inc and insol of GPU g from its free items. Only items that can improve the
 * knapsack (w < 0, load within the capacity left) get dynamic-programming rows; forcing in any
 * other item costs its w plus the optimum over the remaining capacity (read off the last row). */
static void rebuild(BB *b, int64_t g) {
    const int64_t G = b->G, cap = b->rem[g];
    int64_t nd = 0, nr = 0;
    const int64_t *items = b->items + g * b->T; /* every task allowed on g */
    int64_t n = b->n_items[g];
    int64_t idx[n > 0 ? n : 1]; /* the free ones: DP items from the front, the others from the back */
    if (cap < 0) { /* cannot happen: assignments respect capacity */
        b->z[g] = INFINITY;
        return;
    }
    for (int64_t k = 0; k < n; k++) {
        int64_t t = items[k];
        b->insol[t * G + g] = 0;
        if (b->gpu_of[t] >= 0) b->inc[t * G + g] = INFINITY;
        else if (b->w[t * G + g] < 0 && b->a[t * G + g] <= cap) idx[nd++] = t;
        else idx[n - 1 - nr++] = t;
    }
    const int64_t W = cap + 1;
    double *f = b->fwd, *r = b->bwd;
    for (int64_t c = 0; c < W; c++) f[c] = 0.0, r[nd * W + c] = 0.0;
    for (int64_t k = 0; k < nd; k++) {
        int64_t t = idx[k];
        relax(f + k * W, f + (k + 1) * W, W, b->a[t * G + g], b->w[t * G + g]);
    }
    for (int64_t k = nd - 1; k >= 0; k--) {
        int64_t t = idx[k];
        relax(r + (k + 1) * W, r + k * W, W, b->a[t * G + g], b->w[t * G + g]);
    }
    const double *last = f + nd * W;
    b->z[g] = b->base[g] + last[cap];
    /* one optimal solution */
    int64_t c = cap;
    for (int64_t k = nd - 1; k >= 0; k--) {
        if (f[(k + 1) * W + c] != f[k * W + c]) {
            b->insol[idx[k] * G + g] = 1;
            c -= b->a[idx[k] * G + g];
        }
    }
    /* left-out values for the items of the optimal solution */
    for (int64_t k = 0; k < nd; k++) {
        int64_t t = idx[k];
        if (!b->insol[t * G + g]) continue;
        const double *p = f + k * W, *q = r + (k + 1) * W;
        double m = INFINITY;
        for (int64_t c1 = 0; c1 <= cap; c1++) {
            double v = p[c1] + q[cap - c1];
            if (v < m) m = v;
        }
        b->exc[t * G + g] = b->base[g] + m;
    }
    /* forced-in values: w_t + min over c1 of fwd[k][c1] + bwd[k+1][cap - a_t - c1] */
    for (int64_t k = 0; k < nd; k++) {
        int64_t t = idx[k], left = cap - b->a[t * G + g];
        const double *p = f + k * W, *q = r + (k + 1) * W;
        double m = INFINITY;
        for (int64_t c1 = 0; c1 <= left; c1++) {
            double v = p[c1] + q[left - c1];
            if (v < m) m = v;
        }
        b->inc[t * G + g] = b->base[g] + b->w[t * G + g] + m;
    }
    for (int64_t k = n - nr; k < n; k++) { /* not in the DP: never in the optimum */
        int64_t t = idx[k], at = b->a[t * G + g];
        b->inc[t * G + g] = at > cap ? INFINITY : b->base[g] + b->w[t * G + g] + last[cap - at];
    }
}

/* Bound of the node with t forced onto g: g's knapsack with t in, the knapsacks that used t without
 * it (`out` = their summed increase, outpen[t]), the rest unchanged. */
static inline double forced(const BB *b, double Z, int64_t t, int64_t g, double out) {
    const int64_t k = t * b->G + g;
    return Z - b->z[g] + b->inc[k] + out - (b->insol[k] ? b->exc[k] - b->z[g] : 0);
}

static double total_z(const BB *b) {
    double s = 0;
    for (int64_t g = 0; g < b->G; g++) s += b->z[g];
    return s;
}

/* Save GPU g's values (undone by pop_gpu in reverse order); 0 when out of memory. */
static int push_gpu(BB *b, int64_t g) {
    const int64_t G = b->G, n = b->n_items[g];
    const int64_t *items = b->items + g * b->T;
    if (b->sv_n + 1 + 2 * (size_t)n > b->sv_cap) {
        size_t cap = 2 * b->sv_cap + 1 + 2 * (size_t)n;
        double *v = realloc(b->sv, cap * sizeof(double));
        if (!v) return 0;
        b->sv = v, b->sv_cap = cap;
    }
    if (b->sf_n + (size_t)n > b->sf_cap) {
        size_t cap = 2 * b->sf_cap + (size_t)n;
        uint8_t *f = realloc(b->sf, cap);
        if (!f) return 0;
        b->sf = f, b->sf_cap = cap;
    }
    double *v = b->sv + b->sv_n;
    uint8_t *f = b->sf + b->sf_n;
    v[0] = b->z[g];
    for (int64_t k = 0; k < n; k++) {
        int64_t t = items[k];
        v[1 + 2 * k] = b->inc[t * G + g], v[2 + 2 * k] = b->exc[t * G + g], f[k] = b->insol[t * G + g];
    }
    b->sv_n += 1 + 2 * (size_t)n, b->sf_n += (size_t)n;
    return 1;
}

static void pop_gpu(BB *b, int64_t g) {
    const int64_t G = b->G, n = b->n_items[g];
    const int64_t *items = b->items + g * b->T;
    b->sv_n -= 1 + 2 * (size_t)n, b->sf_n -= (size_t)n;
    const double *v = b->sv + b->sv_n;
    const uint8_t *f = b->sf + b->sf_n;
    b->z[g] = v[0];
    for (int64_t k = 0; k < n; k++) {
        int64_t t = items[k];
        b->inc[t * G + g] = v[1 + 2 * k], b->exc[t * G + g] = v[2 + 2 * k], b->insol[t * G + g] = f[k];
    }
}

/* Place t on g. GPUs whose knapsack optimum used t lose it and are recomputed; the others keep
 * their values, which stay valid bounds (t left free in them only relaxes). 0 when out of memory. */
static int assign_task(BB *b, int64_t t, int64_t g, int64_t *touched, int64_t *n_touched) {
    const int64_t G = b->G;
    int64_t n = 0;
    for (int64_t h = 0; h < G; h++)
        if (h != g && b->ok[t * G + h] && b->insol[t * G + h]) touched[n++] = h;
    touched[n++] = g;
    for (int64_t k = 0; k < n; k++)
        if (!push_gpu(b, touched[k])) {
            for (int64_t j = k - 1; j >= 0; j--) pop_gpu(b, touched[j]);
            b->oom = 1;
            return 0;
        }
    b->gpu_of[t] = g;
    b->base[g] += b->w[t * G + g];
    b->rem[g] -= b->a[t * G + g];
    for (int64_t k = 0; k < n; k++) rebuild(b, touched[k]);
    *n_touched = n;
    return 1;
}

/* Undo assign_task exactly: every touched GPU gets its saved values back. */
static void unassign_task(BB *b, int64_t t, const int64_t *touched, int64_t n_touched) {
    const int64_t G = b->G;
    int64_t g = b->gpu_of[t];
    b->gpu_of[t] = -1;
    b->base[g] -= b->w[t * G + g];
    b->rem[g] += b->a[t * G + g];
    for (int64_t k = n_touched - 1; k >= 0; k--) pop_gpu(b, touched[k]);
}

static void dfs(BB *b, int64_t depth, int64_t disc) {
    const int64_t T = b->T, G = b->G;
    if (b->stopped) return;
    b->nodes++;
    if ((b->nodes & 31) == 0 && (now_s() >= b->deadline || (b->stop && *b->stop) ||
                                 (b->node_limit > 0 && b->nodes >= b->node_limit))) {
        b->stopped = 1;
        return;
    }
    double Z = total_z(b);
    if (Z > b->budget + b->eps) return;
    if (depth == T) {
        int64_t cost = 0;
        for (int64_t t = 0; t < T; t++) cost += b->cost[t * G + b->gpu_of[t]];
        if (!b->have_best || cost < b->best_cost) {
            b->have_best = 1;
            b->best_cost = cost;
            memcpy(b->best, b->gpu_of, sizeof(int64_t) * T);
            b->budget = (double)(cost - 1) - b->usum;
        }
        return;
    }
    /* the free task with the fewest GPUs whose forced bound fits the budget */
    int64_t bt = -1, bcount = G + 1;
    double bregret = -1;
    for (int64_t t = 0; t < T; t++) {
        if (b->gpu_of[t] >= 0) continue;
        double out = 0;
        for (int64_t h = 0; h < G; h++)
            if (b->ok[t * G + h] && b->insol[t * G + h]) out += b->exc[t * G + h] - b->z[h];
        b->outpen[t] = out;
        int64_t count = 0;
        double m1 = INFINITY, m2 = INFINITY;
        for (int64_t g = 0; g < G; g++) {
            if (!b->ok[t * G + g]) continue;
            double v = forced(b, Z, t, g, out);
            if (v > b->budget + b->eps) continue;
            count++;
            if (v < m1) m2 = m1, m1 = v;
            else if (v < m2) m2 = v;
        }
        if (count == 0) return;
        double regret = count > 1 ? m2 - m1 : INFINITY;
        if (count < bcount || (count == bcount && regret > bregret)) bt = t, bcount = count, bregret = regret;
    }
    int64_t order[G], m = 0;
    double val[G];
    for (int64_t g = 0; g < G; g++) {
        if (!b->ok[bt * G + g]) continue;
        double v = forced(b, Z, bt, g, b->outpen[bt]);
        if (v > b->budget + b->eps) continue;
        int64_t k = m++;
        while (k > 0 && val[k - 1] > v) val[k] = val[k - 1], order[k] = order[k - 1], k--;
        val[k] = v, order[k] = g;
    }
    int64_t touched[G];
    for (int64_t k = 0; k < m && !b->stopped; k++) {
        if (b->max_disc >= 0 && disc + (k > 0) > b->max_disc) {
            b->cut = 1; /* limited discrepancy: the other GPUs are not tried */
            break;
        }
        int64_t g = order[k];
        /* the budget may have tightened since the list was made */
        if (val[k] > b->budget + b->eps) continue;
        int64_t nt = 0;
        if (!assign_task(b, bt, g, touched, &nt)) {
            b->stopped = 1;
            return;
        }
        dfs(b, depth + 1, disc + (k > 0));
        unassign_task(b, bt, touched, nt);
    }
}

static int need(Py_buffer *v, Py_ssize_t n, const char *what) {
    if (v->len != n) {
        PyErr_Format(PyExc_ValueError, "_gapbb.run: %s has %zd bytes, expected %zd", what, v->len, n);
        return 0;
    }
    return 1;
}

static PyObject *run(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer w, cost, ok, a, cap, fix, out, stop;
    long long T, G, target, node_limit, max_disc;
    double usum, time_limit;
    memset(&stop, 0, sizeof(stop));
    if (!PyArg_ParseTuple(args, "LLy*y*y*y*y*y*w*dLdLL|y*", &T, &G, &w, &cost, &ok, &a, &cap, &fix, &out, &usum,
                          &target, &time_limit, &node_limit, &max_disc, &stop))
        return NULL;
    PyObject *result = NULL;
    BB b;
    memset(&b, 0, sizeof(b));
    if (T < 1 || G < 1) {
        PyErr_SetString(PyExc_ValueError, "_gapbb.run: need T >= 1 and G >= 1");
        goto done;
    }
    if (!need(&w, T * G * 8, "w") || !need(&cost, T * G * 8, "cost") || !need(&ok, T * G, "ok") ||
        !need(&a, T * G * 8, "a") || !need(&cap, G * 8, "cap") || !need(&fix, T * 8, "fix") || !need(&out, T * 8, "out"))
        goto done;
    b.T = T, b.G = G, b.w = w.buf, b.cost = cost.buf, b.ok = ok.buf, b.a = a.buf, b.cap = cap.buf;
    b.usum = usum;
    double wmax = fabs(usum);
    for (int64_t k = 0; k < T * G; k++)
        if (((const uint8_t *)ok.buf)[k] && fabs(((const double *)w.buf)[k]) > wmax) wmax = fabs(((const double *)w.buf)[k]);
    b.eps = 1e-7 + 1e-12 * (double)T * wmax;
    b.budget = (double)target - usum;
    b.best_cost = 0;
    b.have_best = 0;
    b.node_limit = node_limit;
    b.max_disc = max_disc;
    b.stop = (stop.buf && stop.len >= 1) ? (volatile const uint8_t *)stop.buf : NULL;
    int64_t maxcap = 0;
    for (int64_t g = 0; g < G; g++) {
        if (b.cap[g] < 0) {
            PyErr_SetString(PyExc_ValueError, "_gapbb.run: negative capacity");
            goto done;
        }
        if (b.cap[g] > maxcap) maxcap = b.cap[g];
    }
    b.gpu_of = malloc(sizeof(int64_t) * T);
    b.items = malloc(sizeof(int64_t) * G * T);
    b.n_items = calloc((size_t)G, sizeof(int64_t));
    b.base = calloc((size_t)G, sizeof(double));
    b.rem = malloc(sizeof(int64_t) * G);
    b.z = calloc((size_t)G, sizeof(double));
    b.inc = malloc(sizeof(double) * T * G);
    b.insol = calloc((size_t)(T * G), 1);
    b.fwd = malloc(sizeof(double) * (T + 1) * (maxcap + 1));
    b.bwd = malloc(sizeof(double) * (T + 1) * (maxcap + 1));
    b.best = malloc(sizeof(int64_t) * T);
    b.exc = calloc((size_t)(T * G), sizeof(double));
    b.outpen = calloc((size_t)T, sizeof(double));
    if (!b.exc || !b.outpen || !b.gpu_of || !b.items || !b.n_items || !b.base || !b.rem || !b.z || !b.inc || !b.insol || !b.fwd ||
        !b.bwd || !b.best) {
        PyErr_NoMemory();
        goto done;
    }
    for (int64_t t = 0; t < T; t++) b.gpu_of[t] = -1;
    for (int64_t k = 0; k < T * G; k++) b.inc[k] = INFINITY;
    for (int64_t g = 0; g < G; g++) {
        b.rem[g] = b.cap[g];
        for (int64_t t = 0; t < T; t++)
            if (b.ok[t * G + g]) b.items[g * T + b.n_items[g]++] = t;
    }
    const int64_t *fx = fix.buf;
    int64_t depth = 0;
    for (int64_t t = 0; t < T; t++) {
        int64_t g = fx[t];
        if (g < 0) continue;
        if (g >= G || !b.ok[t * G + g]) {
            PyErr_Format(PyExc_ValueError, "_gapbb.run: task %lld fixed to a GPU it may not use", (long long)t);
            goto done;
        }
        b.gpu_of[t] = g;
        b.base[g] += b.w[t * G + g];
        b.rem[g] -= b.a[t * G + g];
        depth++;
    }
    for (int64_t g = 0; g < G; g++)
        if (b.rem[g] < 0) {
            result = Py_BuildValue("OLLOO", Py_False, 0LL, 0LL, Py_True, Py_False); /* pins overload a GPU */
            goto done;
        }
    Py_BEGIN_ALLOW_THREADS
    b.deadline = now_s() + time_limit;
    for (int64_t g = 0; g < G; g++) rebuild(&b, g);
    dfs(&b, depth, 0);
    Py_END_ALLOW_THREADS
    if (b.oom) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *o = out.buf;
    if (b.have_best) memcpy(o, b.best, sizeof(int64_t) * T);
    result = Py_BuildValue("OLLOO", b.have_best ? Py_True : Py_False, (long long)b.best_cost, (long long)b.nodes,
                           (b.stopped || b.cut) ? Py_False : Py_True, b.stopped ? Py_True : Py_False);
done:
    free(b.gpu_of), free(b.items), free(b.n_items), free(b.base), free(b.rem), free(b.z), free(b.inc);
    free(b.insol), free(b.fwd), free(b.bwd), free(b.best), free(b.exc), free(b.outpen), free(b.sv), free(b.sf);
    PyBuffer_Release(&w), PyBuffer_Release(&cost), PyBuffer_Release(&ok), PyBuffer_Release(&a);
    PyBuffer_Release(&cap), PyBuffer_Release(&fix), PyBuffer_Release(&out);
    if (stop.obj) PyBuffer_Release(&stop);
    return result;
}

/* One 0-1 knapsack per GPU: min sum w x over the allowed tasks with w < 0 whose loads fit, the
 * subproblem of the knapsack Lagrangian (gpuplan/bounds/knapsack.py); writes each optimum and its choice. */
static PyObject *knapsacks(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer w, a, ok, cap, x, z;
    long long T, G;
    if (!PyArg_ParseTuple(args, "LLy*y*y*y*w*w*", &T, &G, &w, &a, &ok, &cap, &x, &z)) return NULL;
    PyObject *result = NULL;
    int64_t *items = NULL;
    double *f = NULL;
    uint8_t *take = NULL;
    if (T < 1 || G < 1) {
        PyErr_SetString(PyExc_ValueError, "_gapbb.knapsacks: need T >= 1 and G >= 1");
        goto done;
    }
    if (!need(&w, T * G * 8, "w") || !need(&a, T * G * 8, "a") || !need(&ok, T * G, "ok") || !need(&cap, G * 8, "cap") ||
        !need(&x, T * G, "x") || !need(&z, G * 8, "z"))
        goto done;
    const double *wv = w.buf;
    const int64_t *av = a.buf, *cv = cap.buf;
    const uint8_t *okv = ok.buf;
    uint8_t *xv = x.buf;
    double *zv = z.buf;
    int64_t maxcap = 0;
    for (int64_t g = 0; g < G; g++) {
        if (cv[g] < 0) {
            PyErr_SetString(PyExc_ValueError, "_gapbb.knapsacks: negative capacity");
            goto done;
        }
        if (cv[g] > maxcap) maxcap = cv[g];
    }
    items = malloc(sizeof(int64_t) * T);
    f = malloc(sizeof(double) * (maxcap + 1));
    take = malloc((size_t)T * (size_t)(maxcap + 1));
    if (!items || !f || !take) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    memset(xv, 0, (size_t)(T * G));
    for (int64_t g = 0; g < G; g++) {
        const int64_t C = cv[g];
        int64_t n = 0;
        for (int64_t t = 0; t < T; t++)
            if (okv[t * G + g] && wv[t * G + g] < 0 && av[t * G + g] <= C && av[t * G + g] >= 0) items[n++] = t;
        for (int64_t c = 0; c <= C; c++) f[c] = 0.0;
        for (int64_t k = 0; k < n; k++) {
            const int64_t t = items[k], ai = av[t * G + g];
            const double wi = wv[t * G + g];
            uint8_t *row = take + k * (C + 1);
            memset(row, 0, (size_t)(C + 1));
            for (int64_t c = C; c >= ai; c--) {
                const double cand = f[c - ai] + wi;
                if (cand < f[c]) f[c] = cand, row[c] = 1;
            }
        }
        zv[g] = f[C];
        int64_t c = C;
        for (int64_t k = n - 1; k >= 0; k--)
            if (take[k * (C + 1) + c]) xv[items[k] * G + g] = 1, c -= av[items[k] * G + g];
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(items), free(f), free(take);
    PyBuffer_Release(&w), PyBuffer_Release(&a), PyBuffer_Release(&ok), PyBuffer_Release(&cap);
    PyBuffer_Release(&x), PyBuffer_Release(&z);
    return result;
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS,
     "run(T, G, w, cost, ok, a, cap, fix, out, usum, target, time_limit, node_limit, max_disc[, stop])"
     " -> (found, best cost, nodes, exhausted, stopped by the time or node limit or the stop flag);"
     " stop: a one-byte buffer the caller may set nonzero from another thread to end the search"},
    {"knapsacks", knapsacks, METH_VARARGS,
     "knapsacks(T, G, w, a, ok, cap, x, z): each GPU's 0-1 knapsack optimum into z, its choice into x"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_gapbb", "Lagrangian branch and bound core (see gap_bb.py).", -1, methods, NULL, NULL,
    NULL, NULL,
};

PyMODINIT_FUNC PyInit__gapbb(void) { return PyModule_Create(&module); }
