// N:M SpMM and one-pass TASD on CUDA cores (fp32), NM-SpMM style, over a packed A.
//
// C (rows x cols) = A @ B where A is one or more N:M terms (kernels/nm/pack.py builds the
// packed form once per tensor). The packed A is a list of "entries" (kept values) walked in
// K order: entries are grouped into L-blocks of L dense rows (L = lcm of the terms' M), each
// holding E_L entries per row (all terms' kept values of those windows), so a pipeline stage
// of KS dense rows (a multiple of L) holds e_stage = KS/L * E_L entries. Arrays:
//   At   float (e_tot, rows_pad)   kept values, transposed: At[e][r] (zero for padded rows)
//   Kv   int   (nvec_pad, e_tot)   vector layout: dense K row of entry e for vector v
//   Ke   uchar (e_tot, rows_pad)   element layout: K row of entry e for row r, minus the
//                                  stage's first row (so < KS)
// rows_pad is a multiple of 128 (the largest BM), so A/index loads never leave the arrays.
// K rows >= K (window padding) hold value 0 and their B rows are zero-filled.
//
// Hierarchy: grid (ceil(cols/BN), rows_pad/BM, split); block BM x BN of C; warps of 4*TM rows x
// 64 columns (lanes 4 x 8); thread TM rows x 8 columns (two float4, 32 apart: each 8-lane phase
// of a LDS.128 reads 128 contiguous bytes). A thread's TM rows lie in one 32-row vector, so in
// the vector layout every entry needs ONE B row per thread: an outer product TM x 8 from
// ceil(TM/4)+2 LDS.128. The K loop runs over stages of KS dense rows through a STAGES-deep
// cp.async ring (16-byte copies, zero-fill past the edges); one __syncthreads per stage.
//
// MODE (template):
//   0 vector, slab:   B's KS x BN slab is loaded whole, entries index into it (low sparsity).
//   1 vector, gather: only the B rows the block's vectors use are copied: (BM/32) x EMAX rows
//                     of BN (high sparsity: B traffic scales with N/M, not with K).
//   2 element, slab:  as 0 but every row has its own K row per entry (element-wise N:M): two
//                     LDS.128 of B per row and entry, so shared-memory bandwidth caps it near
//                     a quarter of the FMA peak; it wins at high sparsity.
//   3 element, expand: stage data as in 2, then each thread scatters its A rows' entries into
//                     a dense KS x BM tile in shared memory (zeros elsewhere) and the block runs
//                     the dense register-tiled loop: global A traffic is N/M of dense, FMAs
//                     are dense; it wins at low sparsity (2:4) where mode 2 is bandwidth-bound.
// Split-K: blockIdx.z takes a contiguous range of stages and writes its partial tile to
// W[z]; nm_splitk_reduce sums the partials in z order (deterministic, no atomics).
// Launch contract (checked on the host): cols % 4 == 0, 16-byte aligned pointers,
// e_stage <= EMAX, and for MODE 0/2/3 ks <= EMAX (the slab rows).

#define NM_CP_ASYNC_16(dst, src, bytes)                                                       \
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes))
#define NM_CP_ASYNC_4(dst, src, bytes)                                                        \
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(bytes))

// Shared-memory address of a generic pointer, in PTX so that NVRTC needs no header.
static __device__ __forceinline__ unsigned nm_smem(const void* p) {
  unsigned a;
  asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
  return a;
}
static __device__ __forceinline__ void nm_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
static __device__ __forceinline__ void nm_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// One output row's 8 columns (two float4 of B) += a * b: the rank-1 update every mode's inner loop makes.
static __device__ __forceinline__ void nm_fma8(float* o, float a, const float4& b0, const float4& b1) {
  o[0] += a * b0.x; o[1] += a * b0.y; o[2] += a * b0.z; o[3] += a * b0.w;
  o[4] += a * b1.x; o[5] += a * b1.y; o[6] += a * b1.z; o[7] += a * b1.w;
}

template <int MODE, int BM, int BN, int TM, int EMAX>
struct NmTile {
  static constexpr int VB = BM / 32;                         // vectors per block
  static constexpr int THREADS = (BM / (4 * TM)) * (BN / 64) * 32;
  // Blocks per SM the register budget is cut for: 2 x 256 threads (<= 128 registers each)
  // or 3 x 128 (<= 168): enough warps to overlap one block's barrier with another's FMAs.
  static constexpr int MIN_BLOCKS = THREADS >= 256 ? 2 : 3;
  static constexpr int A_FLOATS = EMAX * BM;
  static constexpr int B_ROWS = MODE == 1 ? VB * EMAX : EMAX;  // slab modes: ks <= EMAX rows
  static constexpr int B_FLOATS = B_ROWS * BN;
  static constexpr int K_BYTES = MODE == 0 ? VB * EMAX * 4 : (MODE >= 2 ? EMAX * BM : 0);
  static constexpr int STAGE_BYTES = (A_FLOATS + B_FLOATS) * 4 + ((K_BYTES + 15) / 16) * 16;
  static constexpr int DENSE_BYTES = MODE == 3 ? EMAX * BM * 4 : 0;  // the expanded A tile, after the ring
};

template <int MODE, int BM, int BN, int TM, int STAGES, int EMAX>
__device__ __forceinline__ void nm_packed_body(const float* __restrict__ At, const int* __restrict__ Kv,
                                               const unsigned char* __restrict__ Ke,
                                               const float* __restrict__ B, float* __restrict__ C,
                                               int rows, int rows_pad, int K, int cols, int e_tot,
                                               int e_stage, int ks, int stages, int per_split) {
  using T = NmTile<MODE, BM, BN, TM, EMAX>;
  static_assert(TM == 4 || TM == 8, "TM is 4 or 8");
  static_assert(32 % (4 * TM) == 0, "a warp's rows must not straddle a 32-row vector");
  extern __shared__ __align__(16) unsigned char nm_shm[];

  const int tid = threadIdx.x;
  const int lane = tid & 31, warp = tid >> 5;
  const int wx = warp % (BN / 64), wy = warp / (BN / 64);
  const int rl = wy * 4 * TM + (lane >> 3) * TM;  // first of this thread's TM rows in the tile
  const int cl = wx * 64 + (lane & 7) * 4;        // columns cl..cl+3 and cl+32..cl+35
  const int vl = rl / 32;                         // the tile-local vector of those rows
  const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
  const int s_begin = blockIdx.z * per_split;
  const int s_end = min(stages, s_begin + per_split);

  auto a_buf = [&](int buf) { return reinterpret_cast<float*>(nm_shm + buf * T::STAGE_BYTES); };
  auto b_buf = [&](int buf) { return a_buf(buf) + T::A_FLOATS; };
  auto k_buf = [&](int buf) { return reinterpret_cast<unsigned char*>(b_buf(buf) + T::B_FLOATS); };

  // Copy stage s (its entries' A values and indices, and its B rows) into ring slot buf.
  auto issue = [&](int s, int buf) {
    const int e0 = s * e_stage, es = min(e_stage, e_tot - e0), k0 = s * ks;
    float* as = a_buf(buf);
    for (int c = tid; c < es * (BM / 4); c += T::THREADS) {
      const int e = c / (BM / 4), r4 = (c % (BM / 4)) * 4;
      NM_CP_ASYNC_16(nm_smem(as + e * BM + r4), At + (long long)(e0 + e) * rows_pad + row0 + r4, 16);
    }
    if (MODE == 0) {
      int* kv = reinterpret_cast<int*>(k_buf(buf));
      for (int c = tid; c < T::VB * es; c += T::THREADS) {
        const int v = c / es, e = c % es;
        NM_CP_ASYNC_4(nm_smem(kv + v * EMAX + e), Kv + (long long)(row0 / 32 + v) * e_tot + e0 + e, 4);
      }
    }
    if (MODE >= 2) {
      unsigned char* ke = k_buf(buf);
      for (int c = tid; c < es * (BM / 16); c += T::THREADS) {
        const int e = c / (BM / 16), r16 = (c % (BM / 16)) * 16;
        NM_CP_ASYNC_16(nm_smem(ke + e * BM + r16), Ke + (long long)(e0 + e) * rows_pad + row0 + r16, 16);
      }
    }
    float* bs = b_buf(buf);
    if (MODE == 1) {
      // Gather: row (v, e) of the slot is B's row Kv[vector][entry]; unused rows are skipped.
      for (int c = tid; c < T::VB * es * (BN / 4); c += T::THREADS) {
        const int r = c / (BN / 4), c4 = (c % (BN / 4)) * 4;
        const int v = r / es, e = r % es;
        const int k = __ldg(Kv + (long long)(row0 / 32 + v) * e_tot + e0 + e);
        const bool ok = k < K && col0 + c4 < cols;
        const float* src = ok ? B + (long long)k * cols + col0 + c4 : B;
        NM_CP_ASYNC_16(nm_smem(bs + (v * EMAX + e) * BN + c4), src, ok ? 16 : 0);
      }
    } else {
      for (int c = tid; c < ks * (BN / 4); c += T::THREADS) {
        const int r = c / (BN / 4), c4 = (c % (BN / 4)) * 4;
        const bool ok = k0 + r < K && col0 + c4 < cols;
        const float* src = ok ? B + (long long)(k0 + r) * cols + col0 + c4 : B;
        NM_CP_ASYNC_16(nm_smem(bs + r * BN + c4), src, ok ? 16 : 0);
      }
    }
  };

  float acc[TM][8];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

  // Prologue: STAGES-1 stages in flight (an empty group keeps the wait count uniform).
#pragma unroll
  for (int p = 0; p < STAGES - 1; ++p) {
    if (s_begin + p < s_end) issue(s_begin + p, p);
    nm_commit();
  }

  for (int s = s_begin; s < s_end; ++s) {
    const int it = s - s_begin, buf = it % STAGES;
    nm_wait<STAGES - 2>();  // this thread's copies of stage s have landed ...
    __syncthreads();        // ... and everyone's; slot (it-1) % STAGES is no longer read
    if (s + STAGES - 1 < s_end) issue(s + STAGES - 1, (it + STAGES - 1) % STAGES);
    nm_commit();

    const float* as = a_buf(buf);
    const float* bs = b_buf(buf);
    const int es = min(e_stage, e_tot - s * e_stage);
    if (MODE == 3) {
      // Expand: the thread owning A row r zeroes its column of the dense tile, then adds its
      // entries (+=: TASD terms may repeat a position with value 0). Same thread, no race.
      float* ad = reinterpret_cast<float*>(nm_shm + STAGES * T::STAGE_BYTES);
      const unsigned char* ke = k_buf(buf);
      for (int r = tid; r < BM; r += T::THREADS) {
        for (int k = 0; k < ks; ++k) ad[k * BM + r] = 0.f;
        for (int e = 0; e < es; ++e) ad[ke[e * BM + r] * BM + r] += as[e * BM + r];
      }
      __syncthreads();
#pragma unroll 2
      for (int k = 0; k < ks; ++k) {
        const float4 b0 = *reinterpret_cast<const float4*>(bs + k * BN + cl);
        const float4 b1 = *reinterpret_cast<const float4*>(bs + k * BN + cl + 32);
#pragma unroll
        for (int q = 0; q < TM; q += 4) {
          const float4 a4 = *reinterpret_cast<const float4*>(ad + k * BM + rl + q);
          const float a[4] = {a4.x, a4.y, a4.z, a4.w};
#pragma unroll
          for (int i = 0; i < 4; ++i) nm_fma8(acc[q + i], a[i], b0, b1);
        }
      }
    } else if (MODE == 2) {
      const unsigned char* ke = k_buf(buf);
#pragma unroll 1
      for (int e = 0; e < es; ++e) {
        float a[TM];
        unsigned char kk[TM];
#pragma unroll
        for (int q = 0; q < TM; q += 4) {
          const float4 a4 = *reinterpret_cast<const float4*>(as + e * BM + rl + q);
          a[q] = a4.x; a[q + 1] = a4.y; a[q + 2] = a4.z; a[q + 3] = a4.w;
          const unsigned k4 = *reinterpret_cast<const unsigned*>(ke + e * BM + rl + q);
          kk[q] = k4 & 255u; kk[q + 1] = (k4 >> 8) & 255u; kk[q + 2] = (k4 >> 16) & 255u; kk[q + 3] = k4 >> 24;
        }
#pragma unroll
        for (int i = 0; i < TM; ++i) {
          const float4 b0 = *reinterpret_cast<const float4*>(bs + kk[i] * BN + cl);
          const float4 b1 = *reinterpret_cast<const float4*>(bs + kk[i] * BN + cl + 32);
          nm_fma8(acc[i], a[i], b0, b1);
        }
      }
    } else {
      const int* kv = reinterpret_cast<const int*>(k_buf(buf));
      const int k0 = s * ks;
#pragma unroll 2
      for (int e = 0; e < es; ++e) {
        const int br = MODE == 0 ? kv[vl * EMAX + e] - k0 : vl * EMAX + e;
        const float4 b0 = *reinterpret_cast<const float4*>(bs + br * BN + cl);
        const float4 b1 = *reinterpret_cast<const float4*>(bs + br * BN + cl + 32);
#pragma unroll
        for (int q = 0; q < TM; q += 4) {
          const float4 a4 = *reinterpret_cast<const float4*>(as + e * BM + rl + q);
          const float a[4] = {a4.x, a4.y, a4.z, a4.w};
#pragma unroll
          for (int i = 0; i < 4; ++i) nm_fma8(acc[q + i], a[i], b0, b1);
        }
      }
    }
  }
  nm_wait<0>();  // no copy may still target shared memory when the block exits

  // Epilogue: float4 stores of the TM x 8 tile (split-K: into this split's partial).
  float* out = C + (long long)blockIdx.z * rows * cols;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int r = row0 + rl + i;
    if (r >= rows) continue;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int c = col0 + cl + 32 * h;
      if (c < cols)
        *reinterpret_cast<float4*>(out + (long long)r * cols + c) =
            make_float4(acc[i][4 * h], acc[i][4 * h + 1], acc[i][4 * h + 2], acc[i][4 * h + 3]);
    }
  }
}

// grid (ceil(cols/BN), rows_pad/BM, split), block NmTile::THREADS, dynamic smem
// STAGES*STAGE_BYTES + DENSE_BYTES;
// writes C[z] (rows x cols) for its tile: C itself when split == 1, else split z's partial.
template <int MODE, int BM, int BN, int TM, int STAGES, int EMAX>
__global__ void __launch_bounds__(NmTile<MODE, BM, BN, TM, EMAX>::THREADS, NmTile<MODE, BM, BN, TM, EMAX>::MIN_BLOCKS)
    nm_packed(const float* __restrict__ At, const int* __restrict__ Kv, const unsigned char* __restrict__ Ke,
              const float* __restrict__ B, float* __restrict__ C, int rows, int rows_pad, int K, int cols,
              int e_tot, int e_stage, int ks, int stages, int per_split) {
  nm_packed_body<MODE, BM, BN, TM, STAGES, EMAX>(At, Kv, Ke, B, C, rows, rows_pad, K, cols, e_tot, e_stage,
                                                 ks, stages, per_split);
}

// grid ceil(n4/256), block 256: C4[i] = sum over z of W4[z * n4 + i], z ascending.
extern "C" __global__ void nm_splitk_reduce(const float4* __restrict__ W, float4* __restrict__ C, int n4,
                                            int split) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n4) return;
  float4 s = W[i];
  for (int z = 1; z < split; ++z) {
    const float4 w = W[(long long)z * n4 + i];
    s.x += w.x; s.y += w.y; s.z += w.z; s.w += w.w;
  }
  C[i] = s;
}
