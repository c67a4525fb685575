// Fused Kron-matmul step: multiply contiguous column chunks of X by a group of Kronecker
// factors (up to KRON_MAX_FUSED per launch) with the chunk held in shared memory, so the
// intermediates of the group never touch device memory (FastKron, Jangda & Yadav 2024).
//
// Layout. X is (M, K) row-major with K = J * S, S = prod(P_g) over the group. Factors arrive
// in processing order (the last Kronecker factor first), concatenated row-major in `fac`;
// dims holds P0, Q0, P1, Q1, ... . For each row and each chunk j (columns j*S .. j*S+S-1) the
// slice is a tensor whose last axis is the current factor's P. One step contracts that axis
// and puts the new Q axis first (the shuffle rotation, done inside the slice):
//     out[q*R + r] = sum_p in[r*P + p] * F[p*Q + q],   R = len(in) / P.
// After the group the slice holds T = prod(Q_g) values in global order and lands at
// Y[row, t*J + j]: Y is (M, T*J), exactly one shuffle pass per factor of the group.
//
// Shared memory: two ping-pong buffers of `tile` slices, each `stride` elements (odd, so
// threads handling neighbouring slices at one offset fall in different banks). Factors are
// read through the read-only data cache; they are tiny and shared by every block.

#define KRON_MAX_FUSED 8

template <typename T>
__device__ __forceinline__ void kron_fused_impl(
    const T* __restrict__ x, T* __restrict__ y, const T* __restrict__ fac,
    const int* __restrict__ dims, int nf, long long m, long long k_in, long long j_count,
    int tile, int stride)
{
    extern __shared__ unsigned char smem_raw[];
    T* buf0 = reinterpret_cast<T*>(smem_raw);
    T* buf1 = buf0 + (long long)tile * stride;

    int P[KRON_MAX_FUSED], Q[KRON_MAX_FUSED];
    long long s_in = 1;
#pragma unroll
    for (int g = 0; g < KRON_MAX_FUSED; ++g) {
        P[g] = g < nf ? dims[2 * g] : 1;
        Q[g] = g < nf ? dims[2 * g + 1] : 1;
        s_in *= P[g];
    }

    const long long j0 = (long long)blockIdx.x * tile;
    const long long left = j_count - j0;  // ternary, not min(): no header needed under NVRTC
    const int nj = left < tile ? (int)left : tile;
    long long t_out = 1;
#pragma unroll
    for (int g = 0; g < KRON_MAX_FUSED; ++g) t_out *= Q[g];
    const long long k_out = t_out * j_count;

    for (long long row = blockIdx.y; row < m; row += gridDim.y) {
        // Load nj contiguous chunks: one coalesced run of nj*s_in elements of this row.
        const T* src = x + row * k_in + j0 * s_in;
        const int n_load = nj * (int)s_in;
        for (int e = threadIdx.x; e < n_load; e += blockDim.x) {
            const int jj = e / (int)s_in;
            buf0[jj * stride + (e - jj * (int)s_in)] = src[e];
        }
        __syncthreads();

        T* in = buf0;
        T* out = buf1;
        int len = (int)s_in;
        const T* f = fac;
#pragma unroll
        for (int g = 0; g < KRON_MAX_FUSED; ++g) {
            if (g < nf) {
                const int p = P[g], q = Q[g];
                const int r_count = len / p;
                const int len_out = q * r_count;
                // Neighbouring threads take neighbouring slices (jj fastest): with the odd
                // stride their shared-memory reads and writes fall in different banks.
                for (int e = threadIdx.x; e < nj * len_out; e += blockDim.x) {
                    const int jj = e % nj;
                    const int o = e / nj;
                    const int qi = o / r_count;
                    const int r = o - qi * r_count;
                    const T* a = in + jj * stride + r * p;
                    T acc = 0;
                    for (int pi = 0; pi < p; ++pi) acc += a[pi] * __ldg(f + pi * q + qi);
                    out[jj * stride + o] = acc;
                }
                __syncthreads();
                f += p * q;
                len = len_out;
                T* tmp = in;
                in = out;
                out = tmp;
            }
        }

        // Store: y[row, t*J + j0 + jj]; jj fastest so a warp writes consecutive addresses.
        T* dst = y + row * k_out + j0;
        for (int e = threadIdx.x; e < nj * len; e += blockDim.x) {
            const int jj = e % nj;
            const int t = e / nj;
            dst[(long long)t * j_count + jj] = in[jj * stride + t];
        }
        __syncthreads();  // the next row reuses both buffers
    }
}

extern "C" __global__ void __launch_bounds__(256) kron_fused_f32(
    const float* __restrict__ x, float* __restrict__ y, const float* __restrict__ fac,
    const int* __restrict__ dims, int nf, long long m, long long k_in, long long j_count,
    int tile, int stride)
{
    kron_fused_impl<float>(x, y, fac, dims, nf, m, k_in, j_count, tile, stride);
}

extern "C" __global__ void __launch_bounds__(256) kron_fused_f64(
    const double* __restrict__ x, double* __restrict__ y, const double* __restrict__ fac,
    const int* __restrict__ dims, int nf, long long m, long long k_in, long long j_count,
    int tile, int stride)
{
    kron_fused_impl<double>(x, y, fac, dims, nf, m, k_in, j_count, tile, stride);
}
