// Bilevel l1,p projections with every step on the device (kernels/projection/device.py drives them).
//
// Group view (n, G): n elements per group, G groups, in one of two layouts:
//   COLS  element (i, g) at y[i*G + g]   (groups are the columns of a row-major matrix)
//   ROWS  element (i, g) at y[g*n + i]   (each group is contiguous)
// Inner norm INNER: 0 = inf (max |y|), 1 = l1 (sum |y|), 2 = l2 (sqrt of sum y^2); sums in double.
//
// Three launches per projection, no host synchronisation:
//   norms_*      one read of y: v_g = ||y_g|| (split over R row blocks; the last block of each
//                group tile to finish folds the R partials in a fixed order, so bits never depend
//                on scheduling)
//   l1_threshold one block: u = P_l1(v, r) by Michelot sweeps from Condat's lower bound, then
//                bisection if the sweeps have not converged (see l1_tau_block)
//   apply_*      one read of y, one write of out: clip (inf), rescale (l2) or a per-group
//                l1-ball projection (l1, group held in shared memory)
// Non-finite input makes every output NaN (the host cannot be told without a synchronisation).

#define INNER_INF 0
#define INNER_L1 1
#define INNER_L2 2
#define MAX_BISECT 200

__device__ __forceinline__ double nan_max(double a, double b) { return (b > a || b != b) ? b : a; }
__device__ __forceinline__ float nan_max(float a, float b) { return (b > a || b != b) ? b : a; }

template <int INNER, typename T> struct Norm {  // l1 / l2: accumulate in double
    typedef double A;
    static __device__ __forceinline__ A zero() { return 0.0; }
    static __device__ __forceinline__ A add(A a, T x) {
        double d = (double)x;
        return INNER == INNER_L1 ? a + fabs(d) : a + d * d;
    }
    static __device__ __forceinline__ A comb(A a, A b) { return a + b; }
    static __device__ __forceinline__ T fin(A a) { return (T)(INNER == INNER_L1 ? a : sqrt(a)); }
};
template <typename T> struct Norm<INNER_INF, T> {  // max is exact: stay in T
    typedef T A;
    static __device__ __forceinline__ A zero() { return (T)0; }
    static __device__ __forceinline__ A add(A a, T x) { return nan_max(a, x < (T)0 ? -x : x); }
    static __device__ __forceinline__ A comb(A a, A b) { return nan_max(a, b); }
    static __device__ __forceinline__ T fin(A a) { return a; }
};

// Sum (or NaN-propagating max when a_is_max) of a and sum of b over a 1-D block whose size is a
// multiple of 32; every thread gets the result. Fixed shuffle tree: deterministic.
__device__ void block_reduce2(double& a, double& b, bool a_is_max, double* red)
{
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        double oa = __shfl_down_sync(0xffffffffu, a, o), ob = __shfl_down_sync(0xffffffffu, b, o);
        a = a_is_max ? nan_max(a, oa) : a + oa;
        b += ob;
    }
    __syncthreads();  // red may still be read from the previous call
    if (lane == 0) { red[wid] = a; red[32 + wid] = b; }
    __syncthreads();
    if (wid == 0) {
        a = lane < nw ? red[lane] : 0.0;
        b = lane < nw ? red[32 + lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) {
            double oa = __shfl_down_sync(0xffffffffu, a, o), ob = __shfl_down_sync(0xffffffffu, b, o);
            a = a_is_max ? nan_max(a, oa) : a + oa;
            b += ob;
        }
        if (lane == 0) { red[64] = a; red[65] = b; }
    }
    __syncthreads();
    a = red[64];
    b = red[65];
}

// Threshold tau of the l1-ball projection of w >= 0 (len entries, a working copy the search may
// overwrite) onto radius r, computed by the whole block. Returns the state: 0 project with tau,
// 1 inside the ball (leave unchanged), 2 radius zero (all zero), 3 non-finite input (tau = NaN).
//   Condat's bounds tau >= max - r and tau >= (sum - r)/len start Michelot's sweeps: each sweep
//   drops the entries below tau (marking them -1) and sets tau = (sum kept - r)/#kept, a lower
//   bound that never passes the answer; the sweep that drops nothing has found tau. After
//   max_sweeps sweeps, bisection on f(t) = sum_kept (w - t)_+ - r brackets tau to one double ulp
//   and tau = (sum_{w > lo} w - r)/#{w > lo} finishes exactly. info (if given) gets tau, sweeps,
//   bisection steps.
template <typename T>
__device__ int l1_tau_block(T* w, long long len, double r, int max_sweeps, double* red, double& tau,
                            double* info)
{
    double m = 0.0, s = 0.0;
    for (long long j = threadIdx.x; j < len; j += blockDim.x) {
        double x = (double)w[j];
        s += x;
        m = nan_max(m, x);
    }
    block_reduce2(m, s, true, red);
    int state = 0, sweeps = 0, bisect = 0;
    tau = 0.0;
    if (!(s - s == 0.0)) { state = 3; tau = s - s; }  // inf or NaN somewhere
    else if (s <= r) state = 1;
    else if (r == 0.0) state = 2;
    else {
        tau = fmin(fmax(m - r, (s - r) / (double)len), m);
        double S = 0.0, K = 0.0;
        for (long long j = threadIdx.x; j < len; j += blockDim.x) {
            double x = (double)w[j];
            if (x >= tau) { S += x; K += 1.0; } else w[j] = (T)-1;
        }
        block_reduce2(S, K, false, red);
        bool done = false;
        while (!done && sweeps < max_sweeps) {
            ++sweeps;
            tau = fmin((S - r) / K, m);
            double S2 = 0.0, K2 = 0.0;
            for (long long j = threadIdx.x; j < len; j += blockDim.x) {
                double x = (double)w[j];
                if (x >= 0.0) {
                    if (x >= tau) { S2 += x; K2 += 1.0; } else w[j] = (T)-1;
                }
            }
            block_reduce2(S2, K2, false, red);
            done = K2 == K;
            S = S2;
            K = K2;
        }
        if (!done) {
            double lo = fmin((S - r) / K, m), hi = m;
            for (; bisect < MAX_BISECT; ++bisect) {
                double mid = 0.5 * (lo + hi);
                if (!(mid > lo && mid < hi)) break;
                double F = 0.0, unused = 0.0;
                for (long long j = threadIdx.x; j < len; j += blockDim.x) {
                    double x = (double)w[j];
                    if (x > mid) F += x - mid;
                }
                block_reduce2(F, unused, false, red);
                if (F >= r) lo = mid; else hi = mid;
            }
            S = 0.0; K = 0.0;
            for (long long j = threadIdx.x; j < len; j += blockDim.x) {
                double x = (double)w[j];
                if (x > lo) { S += x; K += 1.0; }
            }
            block_reduce2(S, K, false, red);
            tau = K > 0.0 ? (S - r) / K : lo;
        }
    }
    if (info != nullptr && threadIdx.x == 0) { info[0] = tau; info[1] = sweeps; info[2] = bisect; }
    return state;
}

// u = P_l1(v, r), one block (blockDim multiple of 32). Working copy in dynamic shared memory
// (len * sizeof(T) bytes) when work is null, else in the global scratch `work`.
template <typename T>
__device__ void l1_threshold(const T* __restrict__ v, T* __restrict__ u, T* work, long long len,
                             double r, int max_sweeps, double* info)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __shared__ double red[66];
    T* w = work != nullptr ? work : reinterpret_cast<T*>(smem_raw);
    for (long long j = threadIdx.x; j < len; j += blockDim.x) w[j] = v[j];
    __syncthreads();
    double tau;
    int state = l1_tau_block(w, len, r, max_sweeps, red, tau, info);
    const T t = (T)tau;
    for (long long j = threadIdx.x; j < len; j += blockDim.x) {
        T d = v[j] - t;
        u[j] = state == 1 ? v[j] : state == 2 ? (T)0 : state == 3 ? t : (d > (T)0 ? d : (T)0);
    }
}

// COLS norms: grid (ceil(G/32), R), block (32, BY). Thread (tx, ty) reduces column
// c = blockIdx.x*32 + tx over rows s*rps + ty, +BY, ... < min((s+1)*rps, n) (s = blockIdx.y); the
// block combines its BY partials in ty order. R == 1 writes v directly; otherwise partial[s*G + c],
// and the last block of the column tile to arrive (ticket in count[blockIdx.x], zeroed by the
// caller) folds partial[0..R-1] in order into v.
template <int INNER, typename T>
__device__ void norms_cols(const T* __restrict__ y, typename Norm<INNER, T>::A* partial, T* __restrict__ v,
                           unsigned* count, long long n, long long G, long long rps)
{
    typedef Norm<INNER, T> N;
    typedef typename N::A A;
    __shared__ A sh[32][33];
    __shared__ unsigned ticket;
    const int tx = threadIdx.x, ty = threadIdx.y, by = blockDim.y;
    const long long c = (long long)blockIdx.x * 32 + tx;
    const long long s = blockIdx.y, R = gridDim.y;
    const long long r0 = s * rps, r1 = r0 + rps < n ? r0 + rps : n;
    A acc = N::zero();
    if (c < G) {
        const T* p = y + c;
#pragma unroll 8
        for (long long i = r0 + ty; i < r1; i += by) acc = N::add(acc, p[i * G]);
    }
    sh[ty][tx] = acc;
    __syncthreads();
    if (ty == 0) {
        for (int k = 1; k < by; ++k) acc = N::comb(acc, sh[k][tx]);
        if (R == 1) {
            if (c < G) v[c] = N::fin(acc);
            return;
        }
        if (c < G) partial[s * G + c] = acc;
        __threadfence();
    }
    if (R == 1) return;
    __syncthreads();
    if (tx == 0 && ty == 0) ticket = atomicAdd(count + blockIdx.x, 1u);
    __syncthreads();
    if (ticket != R - 1 || ty != 0 || c >= G) return;
    A a = __ldcg(partial + c);
    for (long long k = 1; k < R; ++k) a = N::comb(a, __ldcg(partial + k * G + c));
    v[c] = N::fin(a);
}

// ROWS norms: grid (G, R), 1-D block. Block (g, s) reduces y[g*n + i] for i in
// [s*eps, min((s+1)*eps, n)), fixed shuffle tree; the fold over R is as in norms_cols (count[g]).
template <int INNER, typename T>
__device__ void norms_rows(const T* __restrict__ y, typename Norm<INNER, T>::A* partial, T* __restrict__ v,
                           unsigned* count, long long n, long long G, long long eps)
{
    typedef Norm<INNER, T> N;
    typedef typename N::A A;
    __shared__ A sh[32];
    const long long g = blockIdx.x, s = blockIdx.y, R = gridDim.y;
    const long long i0 = s * eps, i1 = i0 + eps < n ? i0 + eps : n;
    const T* p = y + g * n;
    A acc = N::zero();
#pragma unroll 8
    for (long long i = i0 + threadIdx.x; i < i1; i += blockDim.x) acc = N::add(acc, p[i]);
    for (int o = 16; o > 0; o >>= 1) acc = N::comb(acc, __shfl_down_sync(0xffffffffu, acc, o));
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) sh[wid] = acc;
    __syncthreads();
    if (threadIdx.x != 0) return;
    acc = sh[0];
    for (int k = 1; k < nw; ++k) acc = N::comb(acc, sh[k]);
    if (R == 1) { v[g] = N::fin(acc); return; }
    partial[s * G + g] = acc;
    __threadfence();
    if (atomicAdd(count + g, 1u) != R - 1) return;
    A a = __ldcg(partial + g);
    for (long long k = 1; k < R; ++k) a = N::comb(a, __ldcg(partial + k * G + g));
    v[g] = N::fin(a);
}

// Per-group map of the apply step for inf and l2: clip to [-u, u] (NaN-propagating: a NaN
// budget gives NaN) or scale by u/v when v > u (computed in T, as the NumPy path does).
template <int INNER, typename T>
__device__ __forceinline__ T group_param(T ug, T vg)
{
    if (INNER == INNER_INF) return ug;
    return vg > ug ? ug / (vg > (T)0 ? vg : (T)1) : (ug == ug ? (T)1 : ug);
}
template <int INNER, typename T>
__device__ __forceinline__ T apply_one(T x, T p)
{
    if (INNER == INNER_INF) {
        T lo = x < p ? x : p;
        return lo > -p ? lo : -p;
    }
    return x * p;
}

// COLS apply (inf, l2): grid (ceil(G/blockDim.x), ceil(n/rpb)), 1-D block; thread writes column
// c = blockIdx.x*blockDim.x + tx of out for rows blockIdx.y*rpb ... +rpb.
template <int INNER, typename T>
__device__ void apply_cols(const T* __restrict__ y, const T* __restrict__ u, const T* __restrict__ v,
                           T* __restrict__ out, long long n, long long G, long long rpb)
{
    const long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= G) return;
    const T p = group_param<INNER, T>(u[c], v[c]);
    const long long r0 = (long long)blockIdx.y * rpb, r1 = r0 + rpb < n ? r0 + rpb : n;
#pragma unroll 8
    for (long long i = r0; i < r1; ++i) out[i * G + c] = apply_one<INNER, T>(y[i * G + c], p);
}

// ROWS apply (inf, l2): grid (G, ceil(n/epb)), 1-D block; block (g, b) writes out[g*n + i] for
// i in [b*epb, min((b+1)*epb, n)).
template <int INNER, typename T>
__device__ void apply_rows(const T* __restrict__ y, const T* __restrict__ u, const T* __restrict__ v,
                           T* __restrict__ out, long long n, long long epb)
{
    const long long g = blockIdx.x;
    const T p = group_param<INNER, T>(u[g], v[g]);
    const long long i0 = (long long)blockIdx.y * epb, i1 = i0 + epb < n ? i0 + epb : n;
    const T* src = y + g * n;
    T* dst = out + g * n;
#pragma unroll 8
    for (long long i = i0 + threadIdx.x; i < i1; i += blockDim.x) dst[i] = apply_one<INNER, T>(src[i], p);
}

// l1 apply (either layout): grid (G), 1-D block; block g projects group g (element i at
// y[g*gstride + i*estride]) onto the l1 ball of radius u[g], its |y| held in dynamic shared memory
// (n * sizeof(T) bytes). Groups with u >= v stay bit-identical.
template <typename T>
__device__ void apply_l1(const T* __restrict__ y, const T* __restrict__ u, const T* __restrict__ v,
                         T* __restrict__ out, long long n, long long gstride, long long estride, int max_sweeps)
{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __shared__ double red[66];
    T* w = reinterpret_cast<T*>(smem_raw);
    const long long g = blockIdx.x;
    const T* src = y + g * gstride;
    T* dst = out + g * gstride;
    const T ug = u[g];
    if (ug >= v[g]) {
        for (long long i = threadIdx.x; i < n; i += blockDim.x) dst[i * estride] = src[i * estride];
        return;
    }
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        T x = src[i * estride];
        w[i] = x < (T)0 ? -x : x;
    }
    __syncthreads();
    double tau;
    int state = l1_tau_block(w, n, (double)ug, max_sweeps, red, tau, nullptr);
    const T t = (T)tau;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        T x = src[i * estride];
        T a = x < (T)0 ? -x : x;
        T d = a - t;
        T m = state == 3 || ug != ug ? (T)__longlong_as_double(0x7ff8000000000000LL) : state == 2 ? (T)0 : (d > (T)0 ? d : (T)0);
        dst[i * estride] = x < (T)0 ? -m : m;
    }
}

#define PROJ_NORMS(INNER, NAME, T, TN)                                                                    \
    extern "C" __global__ void norms_cols_##NAME##_##TN(const T* y, Norm<INNER, T>::A* partial, T* v,     \
                                                        unsigned* count, long long n, long long G,        \
                                                        long long rps)                                    \
    { norms_cols<INNER, T>(y, partial, v, count, n, G, rps); }                                            \
    extern "C" __global__ void norms_rows_##NAME##_##TN(const T* y, Norm<INNER, T>::A* partial, T* v,     \
                                                        unsigned* count, long long n, long long G,        \
                                                        long long eps)                                    \
    { norms_rows<INNER, T>(y, partial, v, count, n, G, eps); }

#define PROJ_APPLY(INNER, NAME, T, TN)                                                                    \
    extern "C" __global__ void apply_cols_##NAME##_##TN(const T* y, const T* u, const T* v, T* out,       \
                                                        long long n, long long G, long long rpb)          \
    { apply_cols<INNER, T>(y, u, v, out, n, G, rpb); }                                                    \
    extern "C" __global__ void apply_rows_##NAME##_##TN(const T* y, const T* u, const T* v, T* out,       \
                                                        long long n, long long epb)                       \
    { apply_rows<INNER, T>(y, u, v, out, n, epb); }

#define PROJ_TYPE(T, TN)                                                                                  \
    PROJ_NORMS(INNER_INF, inf, T, TN)                                                                     \
    PROJ_NORMS(INNER_L1, l1, T, TN)                                                                       \
    PROJ_NORMS(INNER_L2, l2, T, TN)                                                                       \
    PROJ_APPLY(INNER_INF, inf, T, TN)                                                                     \
    PROJ_APPLY(INNER_L2, l2, T, TN)                                                                       \
    extern "C" __global__ void l1_threshold_##TN(const T* v, T* u, T* work, long long len, double r,      \
                                                 int max_sweeps, double* info)                            \
    { l1_threshold<T>(v, u, work, len, r, max_sweeps, info); }                                            \
    extern "C" __global__ void apply_l1_##TN(const T* y, const T* u, const T* v, T* out, long long n,     \
                                             long long gstride, long long estride, int max_sweeps)        \
    { apply_l1<T>(y, u, v, out, n, gstride, estride, max_sweeps); }

PROJ_TYPE(float, f32)
PROJ_TYPE(double, f64)
