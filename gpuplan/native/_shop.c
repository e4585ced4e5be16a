/* Tabu search for disjunctive schedules: min makespan (gpuplan/backends/schedule_shop.py).
 *
 * Operations v = 0..n-1 each run on one machine chosen among their alternatives (machine, duration),
 * one at a time per machine, without preemption, after their release and after their predecessors
 * (a DAG). A schedule is a machine per operation and an order per machine; its semi-active starts
 * are the heads (longest paths from the releases in the graph of precedence arcs and machine arcs),
 * its makespan the longest path.
 *
 * The neighbourhood is the one of Mastrolilli and Gambardella (J. Scheduling 3, 2000), reassignment
 * and reordering of a critical operation v: take v out of its machine's sequence, recompute heads h
 * and tails q of the rest, then insert v on any of its machines k between u and w wherever
 *     h[u] < h[v] + p_v  and  q[w] < q[v] + p_v        (p_v > 0: neither u after v nor w before v,
 * so no cycle), with the estimate max(r', h[u] + p_u) + d_vk + max(q', p_w + q[w]) of the longest path
 * through v (r': v's release and predecessors' ends; q': its successors' tails). Estimates rank the
 * moves; the best few are evaluated exactly and the best non-tabu one is made (a tabu move only when
 * it beats the best schedule). Leaving machine k after u makes (v, u) tabu, or (v, first of k), for a
 * random tenure. After `stall` moves without a better schedule the search goes back to the best and
 * makes a few random moves. Better: shorter, or as long with fewer critical operations (so that
 * shortening one of several tied longest paths is kept). Schedules that pass a deadline are never
 * kept as the best.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOP 64 /* most moves evaluated exactly per step */

typedef struct {
    double est;
    uint64_t key; /* random tie-break */
    int64_t v, k, u;
    double d;
} Move;

typedef struct {
    int64_t n, M;
    const int64_t *aptr, *amach; /* op v's alternatives: aptr[v] .. aptr[v+1]-1 */
    const double *adur;
    const int64_t *pptr, *plist; /* predecessors (CSR) */
    const int64_t *sptr, *slist; /* successors (CSR) */
    const double *rel, *dl;
    double eps;
    /* current schedule */
    int64_t *mach, *mprev, *mnext, *mfirst;
    double *p;
    /* best schedule */
    int64_t *bmach, *bprev, *bnext, *bfirst;
    double *bp;
    double best;
    int64_t best_crit; /* critical operations of the best schedule: fewer breaks a makespan tie */
    /* scratch */
    double *head, *tail;
    int64_t *order, *indeg, *crit;
    int32_t *tabu; /* [n * (n + M)]: step until which inserting v after u (or first on k) is tabu */
    int top_n;     /* moves evaluated exactly per step, 1..TOP */
    uint32_t *desc, *anc, stamp; /* reach(): marked with the stamp */
    uint64_t rng;
} Shop;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rnd(Shop *s) { /* xorshift64* */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ULL;
}

/* Heads, tails and the makespan of the current graph; 0 when it has a cycle. `late`: whether some
 * operation ends after its deadline. */
static int eval(Shop *s, double *mk, int *late) {
    int64_t n = s->n, top = 0, done = 0;
    for (int64_t v = 0; v < n; v++) {
        s->indeg[v] = (s->pptr[v + 1] - s->pptr[v]) + (s->mprev[v] >= 0);
        s->head[v] = s->rel[v];
        if (s->indeg[v] == 0) s->order[top++] = v;
    }
    while (done < top) {
        int64_t u = s->order[done++];
        double e = s->head[u] + s->p[u];
        for (int64_t i = s->sptr[u]; i < s->sptr[u + 1]; i++) {
            int64_t b = s->slist[i];
            if (e > s->head[b]) s->head[b] = e;
            if (--s->indeg[b] == 0) s->order[top++] = b;
        }
        int64_t w = s->mnext[u];
        if (w >= 0) {
            if (e > s->head[w]) s->head[w] = e;
            if (--s->indeg[w] == 0) s->order[top++] = w;
        }
    }
    if (top < n) return 0;
    double m = 0.0;
    int lt = 0;
    for (int64_t i = n - 1; i >= 0; i--) {
        int64_t v = s->order[i];
        double q = 0.0;
        for (int64_t j = s->sptr[v]; j < s->sptr[v + 1]; j++) {
            int64_t b = s->slist[j];
            if (s->p[b] + s->tail[b] > q) q = s->p[b] + s->tail[b];
        }
        int64_t w = s->mnext[v];
        if (w >= 0 && s->p[w] + s->tail[w] > q) q = s->p[w] + s->tail[w];
        s->tail[v] = q;
        double e = s->head[v] + s->p[v];
        if (e > m) m = e;
        if (e > s->dl[v] + s->eps) lt = 1;
    }
    *mk = m;
    if (late) *late = lt;
    return 1;
}

/* Mark with `st` every operation reachable from v along `ptr`/`list` (precedence arcs) and `link`
 * (machine arcs), v excluded unless on a cycle. */
static void mark_from(Shop *s, int64_t v, const int64_t *ptr, const int64_t *list, const int64_t *link,
                      uint32_t *mark, uint32_t st) {
    int64_t top = 0, done = 0;
    s->order[top++] = v;
    while (done < top) {
        int64_t x = s->order[done++];
        for (int64_t i = ptr[x]; i < ptr[x + 1]; i++) {
            int64_t b = list[i];
            if (mark[b] != st) mark[b] = st, s->order[top++] = b;
        }
        int64_t w = link[x];
        if (w >= 0 && mark[w] != st) mark[w] = st, s->order[top++] = w;
    }
}

/* Mark v's descendants (desc) and ancestors (anc) in the current graph with a new stamp. */
static void reach(Shop *s, int64_t v) {
    uint32_t st = ++s->stamp;
    mark_from(s, v, s->sptr, s->slist, s->mnext, s->desc, st);
    mark_from(s, v, s->pptr, s->plist, s->mprev, s->anc, st);
}

static void unlink_op(Shop *s, int64_t v) {
    int64_t a = s->mprev[v], b = s->mnext[v];
    if (a >= 0) s->mnext[a] = b;
    else s->mfirst[s->mach[v]] = b;
    if (b >= 0) s->mprev[b] = a;
    s->mprev[v] = s->mnext[v] = -1;
}

/* Put v on machine k right after u (u < 0: first). */
static void link_op(Shop *s, int64_t v, int64_t k, int64_t u) {
    int64_t b = u >= 0 ? s->mnext[u] : s->mfirst[k];
    s->mach[v] = k;
    s->mprev[v] = u;
    s->mnext[v] = b;
    if (u >= 0) s->mnext[u] = v;
    else s->mfirst[k] = v;
    if (b >= 0) s->mprev[b] = v;
}

/* Is v on a longest path of the current graph (heads and tails fresh, makespan mk)? */
static int on_longest(const Shop *s, int64_t v, double mk) {
    return s->head[v] + s->p[v] + s->tail[v] >= mk - s->eps;
}

/* How many operations are on a longest path (the tie-break between schedules equally long). */
static int64_t n_critical(const Shop *s, double mk) {
    int64_t c = 0;
    for (int64_t v = 0; v < s->n; v++) c += on_longest(s, v, mk);
    return c;
}

/* Keep the current schedule (makespan mk, `crit` critical operations) as the best. */
static void save_best(Shop *s, double mk, int64_t crit) {
    size_t n = (size_t)s->n;
    s->best = mk;
    s->best_crit = crit;
    memcpy(s->bmach, s->mach, n * sizeof(int64_t));
    memcpy(s->bprev, s->mprev, n * sizeof(int64_t));
    memcpy(s->bnext, s->mnext, n * sizeof(int64_t));
    memcpy(s->bfirst, s->mfirst, (size_t)s->M * sizeof(int64_t));
    memcpy(s->bp, s->p, n * sizeof(double));
}

static void load_best(Shop *s) {
    size_t n = (size_t)s->n;
    memcpy(s->mach, s->bmach, n * sizeof(int64_t));
    memcpy(s->mprev, s->bprev, n * sizeof(int64_t));
    memcpy(s->mnext, s->bnext, n * sizeof(int64_t));
    memcpy(s->mfirst, s->bfirst, (size_t)s->M * sizeof(int64_t));
    memcpy(s->p, s->bp, n * sizeof(double));
}

static int32_t *tabu_at(Shop *s, int64_t v, int64_t k, int64_t u) {
    return &s->tabu[v * (s->n + s->M) + (u >= 0 ? u : s->n + k)];
}

static void keep(const Shop *s, Move *top, int *n_top, Move m) {
    int i;
    if (*n_top < s->top_n) {
        i = (*n_top)++;
    } else {
        i = s->top_n - 1;
        if (m.est > top[i].est || (m.est == top[i].est && m.key >= top[i].key)) return; /* no better than the last */
    }
    while (i > 0 && (m.est < top[i - 1].est || (m.est == top[i - 1].est && m.key < top[i - 1].key))) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = m;
}

/* The candidate moves of v (module comment), or with `any` every allowed position regardless of
 * tabu, ranked into `top`. The graph must be acyclic; v is taken out and put back. */
static void moves_of(Shop *s, int64_t v, int32_t step, int any, Move *top, int *n_top) {
    int64_t k0 = s->mach[v], u0 = s->mprev[v];
    double p0 = s->p[v], mk;
    unlink_op(s, v);
    eval(s, &mk, NULL); /* acyclic: removing arcs keeps it so */
    double r = s->rel[v], q = 0.0;
    for (int64_t i = s->pptr[v]; i < s->pptr[v + 1]; i++) {
        int64_t a = s->plist[i];
        if (s->head[a] + s->p[a] > r) r = s->head[a] + s->p[a];
    }
    for (int64_t i = s->sptr[v]; i < s->sptr[v + 1]; i++) {
        int64_t b = s->slist[i];
        if (s->p[b] + s->tail[b] > q) q = s->p[b] + s->tail[b];
    }
    reach(s, v);
    uint32_t st = s->stamp;
    for (int64_t a = s->aptr[v]; a < s->aptr[v + 1]; a++) {
        int64_t k = s->amach[a];
        double d = s->adur[a];
        int64_t u = -1, w = s->mfirst[k];
        for (;;) {
            /* position between u and w: no cycle unless u is after v or w before it */
            if (u >= 0 && s->desc[u] == st) break; /* so are all after u on k */
            if (w < 0 || s->anc[w] != st) {
                if (!(k == k0 && u == u0)) {
                    double rs = u >= 0 && s->head[u] + s->p[u] > r ? s->head[u] + s->p[u] : r;
                    double qs = w >= 0 && s->p[w] + s->tail[w] > q ? s->p[w] + s->tail[w] : q;
                    double est = rs + d + qs;
                    int tabu = *tabu_at(s, v, k, u) > step;
                    if (any || !tabu || est < s->best - s->eps) {
                        Move m = {est, rnd(s), v, k, u, d};
                        keep(s, top, n_top, m);
                    }
                }
            }
            if (w < 0) break;
            u = w;
            w = s->mnext[w];
        }
    }
    s->p[v] = p0;
    link_op(s, v, k0, u0);
}

/* Make move m; returns its exact makespan (inf when it closes a cycle or passes a deadline, and then
 * the move is undone when `undo_bad`), and with `undo` always undoes it. */
static double try_move(Shop *s, const Move *m, int undo, int *late) {
    int64_t v = m->v, k0 = s->mach[v], u0 = s->mprev[v];
    double p0 = s->p[v], mk;
    int lt = 0;
    unlink_op(s, v);
    link_op(s, v, m->k, m->u);
    s->p[v] = m->d;
    int ok = eval(s, &mk, &lt);
    if (!ok) mk = INFINITY;
    if (late) *late = lt;
    if (undo || !ok) {
        unlink_op(s, v);
        link_op(s, v, k0, u0);
        s->p[v] = p0;
    }
    return mk;
}

/* Critical operations of the current graph (heads and tails fresh), in random order. */
static int64_t critical(Shop *s, double mk) {
    int64_t c = 0;
    for (int64_t v = 0; v < s->n; v++)
        if (on_longest(s, v, mk)) s->crit[c++] = v;
    for (int64_t i = c - 1; i > 0; i--) {
        int64_t j = (int64_t)(rnd(s) % (uint64_t)(i + 1)), t = s->crit[i];
        s->crit[i] = s->crit[j];
        s->crit[j] = t;
    }
    return c;
}

typedef struct {
    int64_t steps, improvements, restarts;
    int stopped;
} Outcome;

static void search(Shop *s, double deadline, int64_t max_steps, double target, int64_t stall, int64_t tenure_lo,
                   int64_t tenure_span, volatile const uint8_t *stop, Outcome *out) {
    double mk;
    int late = 0;
    eval(s, &mk, &late);
    s->best = INFINITY;
    if (!late) save_best(s, mk, n_critical(s, mk));
    int64_t last = 0;
    Move top[TOP];
    for (int64_t step = 1; max_steps <= 0 || step <= max_steps; step++) {
        if (s->best <= target + s->eps) break;
        if ((step & 7) == 0 || s->n > 200) {
            if (now_s() >= deadline) break;
            if (stop && *stop) {
                out->stopped = 1;
                break;
            }
        }
        out->steps = step;
        if (step - last > stall && s->best < INFINITY) { /* back to the best, then a few random moves */
            load_best(s);
            eval(s, &mk, NULL);
            int kicks = 2 + (int)(rnd(s) % 3);
            for (int i = 0; i < kicks; i++) {
                int64_t c = critical(s, mk);
                int n_top = 0;
                for (int64_t j = 0; j < c && n_top < s->top_n; j++) moves_of(s, s->crit[j], (int32_t)step, 1, top, &n_top);
                if (n_top == 0) break;
                Move m = top[rnd(s) % (uint64_t)n_top];
                double nm = try_move(s, &m, 0, NULL);
                if (isfinite(nm)) mk = nm;
                else eval(s, &mk, NULL);
            }
            out->restarts++;
            last = step;
        }
        int64_t c = critical(s, mk);
        int n_top = 0;
        for (int64_t j = 0; j < c; j++) moves_of(s, s->crit[j], (int32_t)step, 0, top, &n_top);
        if (n_top == 0) { /* every move tabu: take the least bad regardless */
            for (int64_t j = 0; j < c; j++) moves_of(s, s->crit[j], (int32_t)step, 1, top, &n_top);
            if (n_top == 0) break; /* nothing can move */
        }
        int pick = -1;
        double pick_mk = INFINITY;
        int pick_late = 1;
        for (int i = 0; i < n_top; i++) {
            int lt = 0;
            double e = try_move(s, &top[i], 1, &lt);
            if (!isfinite(e)) continue;
            if (pick < 0 || e < pick_mk - s->eps || (lt < pick_late && e <= pick_mk + s->eps)) {
                pick = i;
                pick_mk = e;
                pick_late = lt;
            }
        }
        if (pick < 0) { /* every evaluated move closes a cycle (float ties): restart next step */
            last = -stall - 1;
            continue;
        }
        Move m = top[pick];
        int64_t k0 = s->mach[m.v], u0 = s->mprev[m.v];
        mk = try_move(s, &m, 0, &late); /* finite: it was evaluated above; heads and tails are its */
        *tabu_at(s, m.v, k0, u0) = (int32_t)(step + tenure_lo + (int64_t)(rnd(s) % (uint64_t)(tenure_span + 1)));
        if (!late && mk <= s->best + s->eps) {
            int64_t crit = n_critical(s, mk);
            if (mk < s->best - s->eps) {
                save_best(s, mk, crit);
                out->improvements++;
                last = step;
            } else if (crit < s->best_crit) { /* as long, fewer critical operations: kept, stall count reset */
                save_best(s, mk, crit);
                last = step;
            }
        }
    }
    if (s->best < INFINITY) load_best(s);
    eval(s, &mk, NULL);
}

static int need(Py_buffer *b, Py_ssize_t bytes, const char *what) {
    if (b->len != bytes) {
        PyErr_Format(PyExc_ValueError, "_shop.search: %s has %zd bytes, expected %zd", what, b->len, bytes);
        return 0;
    }
    return 1;
}

static PyObject *py_search(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer aptr, amach, adur, pptr, plist, sptr, slist, rel, dl, mach0, order0, out_mach, out_start, stop;
    long long n, M, max_steps, seed, stall, exact, tenure_lo, tenure_span;
    double time_limit, target;
    memset(&stop, 0, sizeof(stop));
    if (!PyArg_ParseTuple(args, "LLy*y*y*y*y*y*y*y*y*y*y*w*w*dLdLLLLL|y*", &n, &M, &aptr, &amach, &adur, &pptr, &plist,
                          &sptr, &slist, &rel, &dl, &mach0, &order0, &out_mach, &out_start, &time_limit, &max_steps,
                          &target, &seed, &stall, &exact, &tenure_lo, &tenure_span, &stop))
        return NULL;
    PyObject *result = NULL;
    Shop s;
    memset(&s, 0, sizeof(s));
    Outcome o;
    memset(&o, 0, sizeof(o));
    if (n < 1 || M < 1) {
        PyErr_SetString(PyExc_ValueError, "_shop.search: need n >= 1 and M >= 1");
        goto done;
    }
    if (!need(&aptr, (n + 1) * 8, "aptr") || !need(&pptr, (n + 1) * 8, "pptr") || !need(&sptr, (n + 1) * 8, "sptr") ||
        !need(&rel, n * 8, "rel") || !need(&dl, n * 8, "dl") || !need(&mach0, n * 8, "mach0") ||
        !need(&order0, n * 8, "order0") || !need(&out_mach, n * 8, "out_mach") || !need(&out_start, n * 8, "out_start"))
        goto done;
    s.n = n, s.M = M;
    s.aptr = aptr.buf, s.amach = amach.buf, s.adur = adur.buf;
    s.pptr = pptr.buf, s.plist = plist.buf, s.sptr = sptr.buf, s.slist = slist.buf;
    s.rel = rel.buf, s.dl = dl.buf;
    int64_t n_alt = s.aptr[n], n_arc = s.pptr[n];
    if (!need(&amach, n_alt * 8, "amach") || !need(&adur, n_alt * 8, "adur") || !need(&plist, n_arc * 8, "plist") ||
        !need(&slist, s.sptr[n] * 8, "slist") || s.sptr[n] != n_arc) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "_shop.search: successor and predecessor counts differ");
        goto done;
    }
    double dmax = 0.0, rmax = 0.0;
    for (int64_t a = 0; a < n_alt; a++) {
        if (s.amach[a] < 0 || s.amach[a] >= M || !(s.adur[a] > 0.0) || !isfinite(s.adur[a])) {
            PyErr_SetString(PyExc_ValueError, "_shop.search: an alternative has a bad machine or a duration <= 0");
            goto done;
        }
        if (s.adur[a] > dmax) dmax = s.adur[a];
    }
    for (int64_t v = 0; v < n; v++) {
        if (s.aptr[v + 1] <= s.aptr[v]) {
            PyErr_Format(PyExc_ValueError, "_shop.search: operation %lld has no alternative", (long long)v);
            goto done;
        }
        if (s.rel[v] > rmax) rmax = s.rel[v];
    }
    s.eps = 1e-9 * (1.0 + rmax + dmax * (double)n);
    s.mach = malloc(n * sizeof(int64_t)), s.mprev = malloc(n * sizeof(int64_t)), s.mnext = malloc(n * sizeof(int64_t));
    s.mfirst = malloc(M * sizeof(int64_t)), s.p = malloc(n * sizeof(double));
    s.bmach = malloc(n * sizeof(int64_t)), s.bprev = malloc(n * sizeof(int64_t)), s.bnext = malloc(n * sizeof(int64_t));
    s.bfirst = malloc(M * sizeof(int64_t)), s.bp = malloc(n * sizeof(double));
    s.head = malloc(n * sizeof(double)), s.tail = malloc(n * sizeof(double));
    s.order = malloc(n * sizeof(int64_t)), s.indeg = malloc(n * sizeof(int64_t)), s.crit = malloc(n * sizeof(int64_t));
    s.tabu = calloc((size_t)(n * (n + M)), sizeof(int32_t));
    s.desc = calloc((size_t)n, sizeof(uint32_t)), s.anc = calloc((size_t)n, sizeof(uint32_t));
    int64_t *last = malloc(M * sizeof(int64_t));
    if (!s.mach || !s.mprev || !s.mnext || !s.mfirst || !s.p || !s.bmach || !s.bprev || !s.bnext || !s.bfirst || !s.bp ||
        !s.head || !s.tail || !s.order || !s.indeg || !s.crit || !s.tabu || !s.desc || !s.anc || !last) {
        free(last);
        PyErr_NoMemory();
        goto done;
    }
    /* the starting schedule: machines from mach0, each machine's order from order0 */
    const int64_t *m0 = mach0.buf, *o0 = order0.buf;
    for (int64_t k = 0; k < M; k++) s.mfirst[k] = last[k] = -1;
    for (int64_t v = 0; v < n; v++) s.mach[v] = -1;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = o0[i];
        if (v < 0 || v >= n || s.mach[v] >= 0) {
            free(last);
            PyErr_SetString(PyExc_ValueError, "_shop.search: order0 is not a permutation");
            goto done;
        }
        int64_t k = m0[v], a = s.aptr[v];
        while (a < s.aptr[v + 1] && s.amach[a] != k) a++;
        if (a == s.aptr[v + 1]) {
            free(last);
            PyErr_Format(PyExc_ValueError, "_shop.search: operation %lld starts on a machine it may not use", (long long)v);
            goto done;
        }
        s.p[v] = s.adur[a];
        link_op(&s, v, k, last[k]);
        last[k] = v;
    }
    free(last);
    double mk;
    if (!eval(&s, &mk, NULL)) {
        PyErr_SetString(PyExc_ValueError, "_shop.search: the starting schedule has a cycle");
        goto done;
    }
    s.rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed * 0xD1B54A32D192ED03ULL);
    if (s.rng == 0) s.rng = 1;
    volatile const uint8_t *flag = (stop.buf && stop.len >= 1) ? (volatile const uint8_t *)stop.buf : NULL;
    Py_BEGIN_ALLOW_THREADS
    s.top_n = exact < 1 ? 1 : exact > TOP ? TOP : (int)exact;
    search(&s, now_s() + time_limit, max_steps, target, stall, tenure_lo, tenure_span, flag, &o);
    Py_END_ALLOW_THREADS
    memcpy(out_mach.buf, s.mach, n * sizeof(int64_t));
    memcpy(out_start.buf, s.head, n * sizeof(double));
    result = Py_BuildValue("dLLLO", s.best, (long long)o.steps, (long long)o.improvements, (long long)o.restarts,
                           o.stopped ? Py_True : Py_False);
done:
    free(s.mach), free(s.mprev), free(s.mnext), free(s.mfirst), free(s.p);
    free(s.bmach), free(s.bprev), free(s.bnext), free(s.bfirst), free(s.bp);
    free(s.head), free(s.tail), free(s.order), free(s.indeg), free(s.crit), free(s.tabu), free(s.desc), free(s.anc);
    PyBuffer_Release(&aptr), PyBuffer_Release(&amach), PyBuffer_Release(&adur), PyBuffer_Release(&pptr);
    PyBuffer_Release(&plist), PyBuffer_Release(&sptr), PyBuffer_Release(&slist), PyBuffer_Release(&rel);
    PyBuffer_Release(&dl), PyBuffer_Release(&mach0), PyBuffer_Release(&order0), PyBuffer_Release(&out_mach);
    PyBuffer_Release(&out_start);
    if (stop.obj) PyBuffer_Release(&stop);
    return result;
}

static PyMethodDef methods[] = {
    {"search", py_search, METH_VARARGS,
     "search(n, M, aptr, amach, adur, pptr, plist, sptr, slist, release, deadline, mach0, order0, out_mach,"
     " out_start, time_limit, max_steps, target, seed, stall, exact, tenure_lo, tenure_span[, stop])"
     " -> (best makespan (inf: none within the deadlines), steps, improvements, restarts, stopped);"
     " the best schedule's machines and starts go to out_mach and out_start"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_shop", "Tabu search for disjunctive schedules (see schedule_shop.py).", -1, methods, NULL,
    NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__shop(void) { return PyModule_Create(&module); }
