// N:M SpMM, NM-SpMM style: C (rows x cols, fp32) = decompress(A) (rows x K) @ B (K x cols).
//
// A arrives compressed (kernels.nm.NMTensor, axis 1): vals (rows, groups*n) of T and
// idx (rows, groups*n) uint8, the position 0..m-1 of each value inside its group of m.
// Positions in the zero padding past K carry value 0; their B rows are loaded as zeros.
//
// Tiling, outermost first:
//   block  BM x 64 outputs, 128 threads; the K loop walks chunks of BKG whole groups
//          (KC = BKG*m <= 32 dense rows of B, EC = BKG*n <= 32 kept values per A row);
//   warp   BM/4 rows x 64 columns;
//   thread TM rows x 8 columns (two float4 of B per kept value: columns tx*4 and 32+tx*4,
//          so each quarter-warp reads 128 contiguous bytes of a B row: no bank conflicts).
// Shared memory is double-buffered: the next chunk's global loads are issued into registers
// before computing on the current buffer and stored to the other buffer afterwards, so one
// __syncthreads per chunk suffices and load latency hides behind the FMAs.
//
// Two paths (template SKIP):
//   low sparsity  (SKIP=false, BM=64): every B row of the chunk is loaded; most are used.
//   high sparsity (SKIP=true,  BM=32): the A tile is loaded first, a shared flag per B row
//                 marks the rows any of the tile's A rows references, and only those rows of
//                 B are fetched. Pays when rows share patterns (vector-wise or TASD terms of
//                 structured weights); with independent random patterns most rows are hit.
// Inputs fp32 or fp16; products and accumulation in fp32.
#include <cuda_fp16.h>

#define NM_THREADS 128
#define NM_BN 64
#define NM_KC_MAX 32
#define NM_A_STRIDE 33  // floats per A row in shared memory: +1 breaks the 4-rows-apart bank clash
#define NM_K_STRIDE 36  // bytes per index row, same reason

static __device__ __forceinline__ float nm_to_f(float x) { return x; }
static __device__ __forceinline__ float nm_to_f(__half x) { return __half2float(x); }

template <typename T, int BM, bool SKIP>
__device__ __forceinline__ void nm_spmm_body(const T* __restrict__ vals,
                                             const unsigned char* __restrict__ idx,
                                             const T* __restrict__ B, float* __restrict__ C,
                                             int rows, int K, int cols, int groups, int n, int m) {
  constexpr int TM = BM / 16;                                     // rows per thread
  constexpr int A_LOADS = BM * NM_KC_MAX / NM_THREADS;            // A slots per thread per chunk
  constexpr int B_LOADS = NM_KC_MAX * NM_BN / NM_THREADS;         // B slots per thread per chunk
  __shared__ __align__(16) float Bs[2][NM_KC_MAX][NM_BN];
  __shared__ float As[2][BM][NM_A_STRIDE];
  __shared__ unsigned char Ks[2][BM][NM_K_STRIDE];
  __shared__ int refs[2][NM_KC_MAX];

  const int tid = threadIdx.x;
  const int tx = tid % 8;    // column group: columns tx*4..+3 and 32+tx*4..+3
  const int ty = tid / 8;    // row group: rows ty*TM..+TM-1 of the block tile
  const int row0 = blockIdx.y * BM;
  const int col0 = blockIdx.x * NM_BN;
  const int bkg = max(1, NM_KC_MAX / m);  // whole groups per chunk
  const int kc = bkg * m;                 // dense B rows per chunk
  const int kn = groups * n;              // kept values per A row
  const int chunks = (groups + bkg - 1) / bkg;

  float acc[TM][8];
#pragma unroll
  for (int r = 0; r < TM; ++r)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[r][j] = 0.f;

  float a_reg[A_LOADS];
  unsigned char k_reg[A_LOADS];
  float b_reg[B_LOADS];

  // Global -> registers: the kept values of chunk c and their dense row inside the chunk.
  auto load_a = [&](int c) {
    // Slot tid + i*128 is row tid/32 + 4i, entry tid%32: one base pointer, a row stride per i.
    const int ec = min(bkg, groups - c * bkg) * n;
    const int e = tid % NM_KC_MAX;
    const int r0 = row0 + tid / NM_KC_MAX;
    const bool e_ok = e < ec;
    const int kk_base = (e / n) * m;
    const size_t base = (size_t)r0 * kn + (size_t)c * bkg * n + e;
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) {
      const bool ok = e_ok && r0 + i * (NM_THREADS / NM_KC_MAX) < rows;
      const size_t off = base + (size_t)i * (NM_THREADS / NM_KC_MAX) * kn;
      a_reg[i] = ok ? nm_to_f(vals[off]) : 0.f;
      k_reg[i] = ok ? (unsigned char)(kk_base + idx[off]) : (unsigned char)0;
    }
  };
  auto store_a = [&](int buf) {
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) {
      const int slot = tid + i * NM_THREADS;
      const int r = slot / NM_KC_MAX, e = slot % NM_KC_MAX;
      As[buf][r][e] = a_reg[i];
      Ks[buf][r][e] = k_reg[i];
      if (SKIP) refs[buf][k_reg[i]] = 1;  // benign race: every writer stores 1
    }
  };
  // Global -> registers: B rows of chunk c (zeros past K or cols; SKIP: only referenced rows).
  auto load_b = [&](int c, int buf) {
    // Slot tid + i*128 is chunk row tid/64 + 2i, column tid%64.
    const int col = tid % NM_BN, r0 = tid / NM_BN;
    const int gc = col0 + col;
    const int rmax = min(kc, K - c * kc);  // rows of this chunk that exist in B
    const T* p = B + (size_t)(c * kc + r0) * cols + gc;
#pragma unroll
    for (int i = 0; i < B_LOADS; ++i) {
      const int r = r0 + i * (NM_THREADS / NM_BN);
      const bool ok = r < rmax && gc < cols && (!SKIP || refs[buf][r]);
      b_reg[i] = ok ? nm_to_f(p[(size_t)i * (NM_THREADS / NM_BN) * cols]) : 0.f;
    }
  };
  auto store_b = [&](int buf) {
#pragma unroll
    for (int i = 0; i < B_LOADS; ++i) {
      const int slot = tid + i * NM_THREADS;
      Bs[buf][slot / NM_BN][slot % NM_BN] = b_reg[i];
    }
  };

  // Prologue: chunk 0 into buffer 0.
  if (SKIP) {
    if (tid < 2 * NM_KC_MAX) refs[tid / NM_KC_MAX][tid % NM_KC_MAX] = 0;
    __syncthreads();
  }
  load_a(0);
  store_a(0);
  if (SKIP) __syncthreads();  // refs[0] complete before B rows are chosen
  load_b(0, 0);
  store_b(0);
  __syncthreads();

  for (int c = 0; c < chunks; ++c) {
    const int cur = c & 1, nxt = cur ^ 1;
    const bool has_next = c + 1 < chunks;
    const int ec = min(bkg, groups - c * bkg) * n;
    if (SKIP) {
      // The next A tile must be in shared memory (with its row flags) before its B loads.
      if (has_next) {
        load_a(c + 1);
        store_a(nxt);
      }
      __syncthreads();
      if (tid < NM_KC_MAX) refs[cur][tid] = 0;  // used only for chunk c's B loads, already done
      if (has_next) load_b(c + 1, nxt);
    } else if (has_next) {
      load_a(c + 1);
      load_b(c + 1, nxt);
    }

#pragma unroll 2
    for (int e = 0; e < ec; ++e) {
#pragma unroll
      for (int r = 0; r < TM; ++r) {
        const int lr = ty * TM + r;
        const float v = As[cur][lr][e];
        const int kk = Ks[cur][lr][e];
        const float4 b0 = *reinterpret_cast<const float4*>(&Bs[cur][kk][tx * 4]);
        const float4 b1 = *reinterpret_cast<const float4*>(&Bs[cur][kk][32 + tx * 4]);
        acc[r][0] += v * b0.x; acc[r][1] += v * b0.y; acc[r][2] += v * b0.z; acc[r][3] += v * b0.w;
        acc[r][4] += v * b1.x; acc[r][5] += v * b1.y; acc[r][6] += v * b1.z; acc[r][7] += v * b1.w;
      }
    }

    if (has_next) {
      if (!SKIP) store_a(nxt);
      store_b(nxt);
    }
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < TM; ++r) {
    const int gr = row0 + ty * TM + r;
    if (gr >= rows) continue;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int gc = col0 + (j < 4 ? tx * 4 + j : 32 + tx * 4 + (j - 4));
      if (gc < cols) C[(size_t)gr * cols + gc] = acc[r][j];
    }
  }
}

// Launch: grid (ceil(cols/64), ceil(rows/BM)), block 128; writes every C[r][c] of its tile in range.
#define NM_SPMM_KERNEL(NAME, T, BM, SKIP)                                                        \
  extern "C" __global__ void __launch_bounds__(NM_THREADS)                                       \
      NAME(const T* __restrict__ vals, const unsigned char* __restrict__ idx,                    \
           const T* __restrict__ B, float* __restrict__ C, int rows, int K, int cols, int groups, \
           int n, int m) {                                                                       \
    nm_spmm_body<T, BM, SKIP>(vals, idx, B, C, rows, K, cols, groups, n, m);                     \
  }

NM_SPMM_KERNEL(nm_spmm_f32_low, float, 64, false)
NM_SPMM_KERNEL(nm_spmm_f32_high, float, 32, true)
NM_SPMM_KERNEL(nm_spmm_f16_low, __half, 64, false)
NM_SPMM_KERNEL(nm_spmm_f16_high, __half, 32, true)
