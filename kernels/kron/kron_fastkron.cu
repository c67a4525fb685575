// FastKron-style Kron-matmul launch (after Jangda & Yadav, PPoPP'24; written here from the paper's
// ideas): multiply a group of up to KFK_MAX_FACTORS Kronecker factors per launch with the slice
// held in shared memory, register-tiled, writing each result where the next factor reads it.
//
// Layout contract (mirrored by kernels/kron/model.py, which tests it in NumPy):
//  * X is (M, J*S) row-major, S = prod P_g over the group; chunk j of a row is the S columns
//    j*S .. j*S+S-1. Y is (M, J*T), T = prod Q_g; chunk j's T results land at Y[row, t*J + j].
//  * Factors arrive in processing order (the last Kronecker factor first); pq_g = P | Q << 16.
//  * Block (bx, by) owns chunks j0 = bx*NJ .. j0+NJ-1 (NJ = 1 << nj_log) and row tiles
//    by, by + gridDim.y, ... of TM rows. Its shared buffers hold b = row*NJ + chunk in order,
//    each b's L values contiguous: logical index b*L + i, stored at phys(i) = i + (i >> lg) so
//    one spare element every W = max(n, 128 B / sizeof(T)) elements (n the slice length, a power
//    of two) puts the slices that neighbouring lanes read into different banks (kfk_pad_log).
//  * Step g reads slices of P_g (slice s = b*R + r, R = L/P_g) and writes out[b*L' + q*R + r],
//    L' = Q_g*R: the next factor's slices are again contiguous, so nothing is transposed.
//  * After the last step the tile is copied out chunk-fastest so a warp's stores are contiguous.
//
// Dynamic shared memory: [16 ints: pq of each factor][factors, each P x Qp (Q rounded up to RQ,
// zero padded), regions rounded to 4 elements][buf0: buf_elems][buf1: buf_elems].

#define KFK_MAX_FACTORS 8
#define KFK_THREADS 256
#define KFK_META_BYTES 64

// Padding period W = max(n, 128 bytes / sizeof(T)): one row of all 32 banks.
template <typename T>
__device__ __forceinline__ int kfk_pad_log(int n)
{
    constexpr int row = 128 / sizeof(T);
    if (n < 2 || (n & (n - 1))) return 30;  // no padding: not a power of two
    return 31 - __clz(n < row ? row : n);
}

__device__ __forceinline__ int kfk_phys(int i, int lg) { return i + (i >> lg); }

// Fused multiply-add by intrinsic: no math header needed under NVRTC.
__device__ __forceinline__ float kfk_fma(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double kfk_fma(double a, double b, double c) { return __fma_rn(a, b, c); }

template <typename T, int N> struct KfkVec;
template <> struct KfkVec<float, 1> { typedef float type; };
template <> struct KfkVec<float, 2> { typedef float2 type; };
template <> struct KfkVec<float, 4> { typedef float4 type; };
template <> struct KfkVec<double, 1> { typedef double type; };
template <> struct KfkVec<double, 2> { typedef double2 type; };

// RQ consecutive factor values from shared memory in 16-byte (or narrower) loads.
template <typename T, int RQ>
__device__ __forceinline__ void kfk_load_row(T (&v)[RQ], const T* src)
{
    constexpr int W = (16 / sizeof(T)) < RQ ? (16 / sizeof(T)) : RQ;
    typedef typename KfkVec<T, W>::type V;
#pragma unroll
    for (int j = 0; j < RQ; j += W) {
        const V t = *reinterpret_cast<const V*>(src + j);
        const T* e = reinterpret_cast<const T*>(&t);
#pragma unroll
        for (int w = 0; w < W; ++w) v[j + w] = e[w];
    }
}

// One factor step on the block's tile: out[b*Lout + q*R + r] = sum_p in[b*L + r*P + p] * F[p, q].
// Work item w = (q group qg, slice group sk); its RK slices are sk, sk + NSK, ... so neighbouring
// lanes take neighbouring slices (distinct banks) and share qg (the factor row is a broadcast).
template <typename T, int RK, int RQ>
__device__ __forceinline__ void kfk_step(
    const T* __restrict__ in, T* __restrict__ out, const T* __restrict__ f,
    int P, int Q, int Qp, int R, int Lout, int NS, int lg_in, int lg_out)
{
    const int NSK = (NS + RK - 1) / RK;
    const int NQ = Qp / RQ;
    for (int w = threadIdx.x; w < NSK * NQ; w += blockDim.x) {
        const int qg = w / NSK;
        const int sk = w - qg * NSK;
        const T* a[RK];
#pragma unroll
        for (int k = 0; k < RK; ++k) {
            const int i = (sk + k * NSK) * P;
            a[k] = in + kfk_phys(i, lg_in);
        }
        const T* fq = f + qg * RQ;
        T acc[RK][RQ];
#pragma unroll
        for (int k = 0; k < RK; ++k)
#pragma unroll
            for (int j = 0; j < RQ; ++j) acc[k][j] = T(0);
#pragma unroll 4
        for (int p = 0; p < P; ++p) {
            T xv[RK], fv[RQ];
#pragma unroll
            for (int k = 0; k < RK; ++k) xv[k] = a[k][p];
            kfk_load_row<T, RQ>(fv, fq + p * Qp);
#pragma unroll
            for (int k = 0; k < RK; ++k)
#pragma unroll
                for (int j = 0; j < RQ; ++j) acc[k][j] = kfk_fma(xv[k], fv[j], acc[k][j]);
        }
#pragma unroll
        for (int k = 0; k < RK; ++k) {
            const int s = sk + k * NSK;
            if (s < NS) {
                const int b = s / R;
                const int ob = b * Lout + (s - b * R) + qg * RQ * R;
#pragma unroll
                for (int j = 0; j < RQ; ++j) {
                    if (qg * RQ + j < Q) {
                        const int i = ob + j * R;
                        out[kfk_phys(i, lg_out)] = acc[k][j];
                    }
                }
            }
        }
    }
}

// fa.f[g] for a runtime g without copying the parameter arrays to local memory.
template <typename V>
__device__ __forceinline__ V kfk_pick(const V (&v)[KFK_MAX_FACTORS], int g)
{
    V r = v[0];
#pragma unroll
    for (int i = 1; i < KFK_MAX_FACTORS; ++i) r = g == i ? v[i] : r;
    return r;
}

template <typename T> struct KfkFactors {
    const T* f[KFK_MAX_FACTORS];
    int pq[KFK_MAX_FACTORS];
};

template <typename T, int RK, int RQ>
__device__ __forceinline__ void kfk_impl(
    const T* __restrict__ x, T* __restrict__ y, const KfkFactors<T>& fa, int nf, int m,
    int j_count, int nj_log, int tm, int buf_elems)
{
    extern __shared__ __align__(16) unsigned char kfk_smem[];
    int* meta = reinterpret_cast<int*>(kfk_smem);
    T* fsh = reinterpret_cast<T*>(kfk_smem + KFK_META_BYTES);

    // Stage the factors (zero-padded to Qp columns) once per block; every row tile reuses them.
    int f_elems = 0, S = 1, Tn = 1;
#pragma unroll 1
    for (int g = 0; g < nf; ++g) {
        const int pq = kfk_pick(fa.pq, g);
        const int P = pq & 0xffff, Q = pq >> 16, Qp = (Q + RQ - 1) / RQ * RQ;
        T* dst = fsh + f_elems;
        const T* src = kfk_pick(fa.f, g);
        for (int e = threadIdx.x; e < P * Qp; e += blockDim.x) {
            const int p = e / Qp, q = e - p * Qp;
            dst[e] = q < Q ? src[p * Q + q] : T(0);
        }
        if (threadIdx.x == 0) meta[g] = pq;
        f_elems += (P * Qp + 3) & ~3;
        S *= P;
        Tn *= Q;
    }
    T* buf0 = fsh + f_elems;
    T* buf1 = buf0 + buf_elems;

    const int NJ = 1 << nj_log;
    const int j0 = blockIdx.x << nj_log;
    const int njv = j_count - j0 < NJ ? j_count - j0 : NJ;
    const long long k_in = (long long)j_count * S;
    const long long k_out = (long long)j_count * Tn;
    const int lg0 = kfk_pad_log<T>(fa.pq[0] & 0xffff);
    const int lgT = kfk_pad_log<T>(Tn);
    __syncthreads();

    for (int m0 = blockIdx.y * tm; m0 < m; m0 += gridDim.y * tm) {
        const int rows = m - m0 < tm ? m - m0 : tm;
        // Load: each row's njv*S inputs are one contiguous run of X (coalesced).
        for (int row = 0; row < rows; ++row) {
            const T* src = x + (long long)(m0 + row) * k_in + (long long)j0 * S;
            const int base = row * NJ * S;
            for (int e = threadIdx.x; e < njv * S; e += blockDim.x) buf0[kfk_phys(base + e, lg0)] = src[e];
        }
        __syncthreads();

        T* in = buf0;
        T* out = buf1;
        int L = S, foff = 0;
        for (int g = 0; g < nf; ++g) {
            const int P = meta[g] & 0xffff, Q = meta[g] >> 16, Qp = (Q + RQ - 1) / RQ * RQ;
            const int R = L / P;
            const int Lout = R * Q;
            const int lg_out = g + 1 < nf ? kfk_pad_log<T>(meta[g + 1] & 0xffff) : lgT;
            kfk_step<T, RK, RQ>(in, out, fsh + foff, P, Q, Qp, R, Lout, tm * NJ * R, kfk_pad_log<T>(P), lg_out);
            __syncthreads();
            foff += (P * Qp + 3) & ~3;
            L = Lout;
            T* t = in;
            in = out;
            out = t;
        }

        // Store: lanes take consecutive chunks of one output column t, so a warp writes runs of
        // NJ consecutive elements of Y[row, t*J + j0 ...].
        const int c = threadIdx.x & (NJ - 1);
        const int groups = blockDim.x >> nj_log;
        if (c < njv) {
            for (int row = 0; row < rows; ++row) {
                T* dst = y + (long long)(m0 + row) * k_out + j0 + c;
                const int base = (row * NJ + c) * Tn;
                for (int t = threadIdx.x >> nj_log; t < Tn; t += groups)
                    dst[(long long)t * j_count] = in[kfk_phys(base + t, lgT)];
            }
        }
        __syncthreads();  // the next row tile reuses both buffers
    }
}

// One extern "C" entry per (dtype, register tile RK x RQ); kernels/kron/plan.py lists them.
#define KFK_KERNEL(NAME, T, RK, RQ)                                                              \
    extern "C" __global__ void __launch_bounds__(KFK_THREADS) NAME(                              \
        const T* __restrict__ x, T* __restrict__ y, const T* f0, const T* f1, const T* f2,       \
        const T* f3, const T* f4, const T* f5, const T* f6, const T* f7, int pq0, int pq1,       \
        int pq2, int pq3, int pq4, int pq5, int pq6, int pq7, int nf, int m, int j_count,        \
        int nj_log, int tm, int buf_elems)                                                       \
    {                                                                                            \
        const KfkFactors<T> fa = {{f0, f1, f2, f3, f4, f5, f6, f7},                              \
                                  {pq0, pq1, pq2, pq3, pq4, pq5, pq6, pq7}};                     \
        kfk_impl<T, RK, RQ>(x, y, fa, nf, m, j_count, nj_log, tm, buf_elems);                    \
    }

KFK_KERNEL(kron_fk_f32_4x8, float, 4, 8)
KFK_KERNEL(kron_fk_f32_4x4, float, 4, 4)
KFK_KERNEL(kron_fk_f32_4x2, float, 4, 2)
KFK_KERNEL(kron_fk_f32_8x1, float, 8, 1)
KFK_KERNEL(kron_fk_f64_4x4, double, 4, 4)
KFK_KERNEL(kron_fk_f64_2x4, double, 2, 4)
KFK_KERNEL(kron_fk_f64_4x2, double, 4, 2)
KFK_KERNEL(kron_fk_f64_4x1, double, 4, 1)
