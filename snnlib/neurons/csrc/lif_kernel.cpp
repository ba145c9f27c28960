// Fused multi-step LIF/IF kernels for float32 on CPU: forward, and backward by recomputation;
// and the elementwise passes of the RCS regulariser on a LIF layer's spikes and membranes.
//
// Built on first use by snnlib/fast_lif.py with a plain `c++ -O3 -march=native -fopenmp
// -ffp-contract=off -shared` and called through ctypes: no torch headers and no ninja, so a
// build takes 2-7 s. The OpenMP runtime is the libgomp.so.1 that torch has already loaded,
// so torch and this kernel share one thread pool.
//
// Every floating-point expression below repeats snnlib.neurons.lif_step and ZIF.backward
// operation by operation (same operands, same order); -ffp-contract=off forbids fused
// multiply-adds, so the results are bit-identical to the PyTorch reference. The derivation of
// the backward pass is in the docstring of snnlib/fast_lif.py.
//
// Layout: x, spikes, membrane and the gradients are [T, N] (time first, N = B * features);
// threshold is either a scalar or an [N] array; the membrane v0 is [N] or absent (v_init).
// Work is split over N in chunks, at least one per thread; a chunk runs all T steps. Forward
// keeps the chunk's membrane in L2. Backward recomputes u_t into the rows of the input
// gradient, then sweeps t backwards, overwriting each row with dL/du_t: no extra memory.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace {

// Chunk lengths along N (rows of 128 / 256 KiB): long rows keep the hardware prefetchers
// streaming, and a forward chunk's membrane stays in L2. Measured on a 2-core EPYC: 2048 was
// up to 1.5x slower. Overridable with -D for tuning.
#ifndef SNN_FWD_CHUNK
#define SNN_FWD_CHUNK 32768
#endif
#ifndef SNN_BWD_CHUNK
#define SNN_BWD_CHUNK 65536
#endif

// At most `limit` elements, and at least one chunk per thread (multiples of 16: whole vectors).
int64_t chunk_length(int64_t N, int nt, int64_t limit) {
  const int64_t per_thread = ((N + nt - 1) / nt + 15) / 16 * 16;
  return std::max<int64_t>(16, std::min(limit, per_thread));
}

// A reusable per-thread buffer (OpenMP threads persist, so no allocation after the first call).
float* scratch(int64_t n) {
  static thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

struct Lif {
  int64_t T, N;
  float decay, v_init, thr;  // thr: the scalar threshold when no [N] array is given
  const float* thr_n;        // [N] or nullptr
  bool hard;
};

template <bool HARD, bool THR_N, bool MEM>
void forward_chunk(const Lif& p, const float* x, const float* v0, float* spikes, float* mem,
                   float* final_v, float* __restrict v, int64_t i0, int64_t n) {
  const float decay = p.decay, thr = p.thr;
  for (int64_t i = 0; i < n; ++i) v[i] = v0 ? v0[i0 + i] : p.v_init;
  const float* __restrict th_n = THR_N ? p.thr_n + i0 : nullptr;
  for (int64_t t = 0; t < p.T; ++t) {
    const float* __restrict xt = x + t * p.N + i0;
    float* __restrict st = spikes + t * p.N + i0;
    float* __restrict mt = MEM ? mem + t * p.N + i0 : nullptr;
    for (int64_t i = 0; i < n; ++i) {
      const float th = THR_N ? th_n[i] : thr;
      const float u = decay * v[i] + xt[i];                // u = decay * v + x
      const float s = (u - th) > 0.0f ? 1.0f : 0.0f;       // s = H(u - θ), strict
      const float vn = HARD ? u * (1.0f - s) : u - th * s;  // v = u(1 - s) | u - θ s
      st[i] = s;
      if (MEM) mt[i] = vn;
      v[i] = vn;
    }
  }
  if (final_v)
    for (int64_t i = 0; i < n; ++i) final_v[i0 + i] = v[i];
}

// One step (T = 1, streaming): straight from v0 to final_v, which may be the same array (the
// membrane updated in place). The running-membrane copy of forward_chunk would cost as much
// as the step itself here (measured: 2.2x slower over a 19 MB layer).
template <bool HARD, bool THR_N, bool MEM>
void forward_step(const Lif& p, const float* __restrict x, const float* v0,
                  float* __restrict spikes, float* __restrict mem, float* final_v, int64_t i0,
                  int64_t n) {
  const float decay = p.decay, thr = p.thr;
  const float* __restrict th_n = THR_N ? p.thr_n + i0 : nullptr;
  for (int64_t i = 0; i < n; ++i) {
    const float th = THR_N ? th_n[i] : thr;
    const float u = decay * (v0 ? v0[i0 + i] : p.v_init) + x[i0 + i];
    const float s = (u - th) > 0.0f ? 1.0f : 0.0f;
    const float vn = HARD ? u * (1.0f - s) : u - th * s;
    spikes[i0 + i] = s;
    if (MEM) mem[i0 + i] = vn;
    else final_v[i0 + i] = vn;
  }
}

// One reverse step over a chunk, in place: ug holds u_t on entry and dL/du_t on exit.
// gnext holds decay * gu_{t+1} (NEXT) and receives decay * gu_t.
// GS: a spike gradient reaches step t; ROW: a membrane gradient reaches step t.
template <bool HARD, bool THR_N, bool GS, bool ROW, bool NEXT>
void backward_row(float* __restrict ug, const float* __restrict th_n, float thr,
                  const float* __restrict gs_t, const float* __restrict gm_t,
                  float* __restrict gnext, float decay, float gamma, float gamma2, int64_t n) {
  constexpr bool GV = ROW || NEXT;
  for (int64_t i = 0; i < n; ++i) {
    const float th = THR_N ? th_n[i] : thr;
    const float u = ug[i];
    const float z = u - th;
    const float s = z > 0.0f ? 1.0f : 0.0f;
    float gv = 0.0f;  // dL/dv_t: from the membrane output and from step t+1
    if (ROW && NEXT) gv = gm_t[i] + gnext[i];
    else if (ROW) gv = gm_t[i];
    else if (NEXT) gv = gnext[i];
    // dL/ds_t: from the spike output and through the reset
    const float reset = HARD ? -(gv * u) : (-gv) * th;
    float gs = 0.0f;
    if (GS && GV) gs = gs_t[i] + reset;
    else if (GS) gs = gs_t[i];
    else gs = reset;
    float c = gamma - std::fabs(z);  // ZIF: (g * max(0, γ - |z|)) / γ²
    c = c < 0.0f ? 0.0f : c;
    const float gz = (gs * c) / gamma2;
    float gu = gz;  // dL/du_t
    if (GV) gu = HARD ? gv * (1.0f - s) + gz : gv + gz;
    ug[i] = gu;
    gnext[i] = gu * decay;
  }
}

template <bool HARD, bool THR_N>
void backward_step(float* ug, const float* th_n, float thr, const float* gs_t, const float* gm_t,
                   bool next, float* gnext, float decay, float gamma, float gamma2, int64_t n) {
  const int code = (gs_t ? 4 : 0) | (gm_t ? 2 : 0) | (next ? 1 : 0);
#define SNN_ROW(c, GS, ROW, NEXT)                                                             \
  case c:                                                                                     \
    backward_row<HARD, THR_N, GS, ROW, NEXT>(ug, th_n, thr, gs_t, gm_t, gnext, decay, gamma, \
                                             gamma2, n);                                      \
    break;
  switch (code) {
    SNN_ROW(1, false, false, true)
    SNN_ROW(2, false, true, false)
    SNN_ROW(3, false, true, true)
    SNN_ROW(4, true, false, false)
    SNN_ROW(5, true, false, true)
    SNN_ROW(6, true, true, false)
    SNN_ROW(7, true, true, true)
    default:
      break;
  }
#undef SNN_ROW
}

struct Grads {
  const float* gs;  // spike gradient, nullptr if none; row t at gs + t * gs_tstride
  int64_t gs_tstride;
  const float* gm;  // membrane gradient, nullptr if none; row t at gm + t * gm_tstride
  int64_t gm_tstride;
  int64_t gm_first;  // first step with a membrane gradient (0, or T - 1 for the final state)
  float* gx;         // [T, N] out
  float* gv0;        // [N] out, or nullptr
  float gamma, gamma2;
};

template <bool HARD, bool THR_N>
void backward_chunk(const Lif& p, const Grads& g, const float* x, const float* v0, float* gnext,
                    int64_t i0, int64_t n) {
  const int64_t T = p.T, N = p.N;
  const float decay = p.decay, thr = p.thr;
  const float* th_n = THR_N ? p.thr_n + i0 : nullptr;
  // Recompute u_t, exactly as the forward does, into the rows of gx (no extra memory).
  float* __restrict v = gnext;  // reused as the running membrane
  for (int64_t i = 0; i < n; ++i) v[i] = v0 ? v0[i0 + i] : p.v_init;
  for (int64_t t = 0; t < T; ++t) {
    const float* __restrict xt = x + t * N + i0;
    float* __restrict ut = g.gx + t * N + i0;
    for (int64_t i = 0; i < n; ++i) {
      const float th = THR_N ? th_n[i] : thr;
      const float u = decay * v[i] + xt[i];
      const float s = (u - th) > 0.0f ? 1.0f : 0.0f;
      ut[i] = u;
      v[i] = HARD ? u * (1.0f - s) : u - th * s;
    }
  }
  // Reverse sweep (BPTT through the reset and the leak).
  bool next = false;  // does gnext hold decay * gu_{t+1}?
  for (int64_t t = T - 1; t >= 0; --t) {
    const float* gs_t = g.gs ? g.gs + t * g.gs_tstride + i0 : nullptr;
    const float* gm_t = (g.gm && t >= g.gm_first) ? g.gm + t * g.gm_tstride + i0 : nullptr;
    float* ug = g.gx + t * N + i0;
    if (!gs_t && !gm_t && !next) {  // nothing reaches this step: zero gradient
      std::fill(ug, ug + n, 0.0f);
      continue;
    }
    backward_step<HARD, THR_N>(ug, th_n, thr, gs_t, gm_t, next, gnext, decay, g.gamma,
                               g.gamma2, n);
    next = true;
  }
  if (g.gv0) {
    for (int64_t i = 0; i < n; ++i) g.gv0[i0 + i] = next ? gnext[i] : 0.0f;
  }
}

int threads_for(int64_t work, int nthreads) {
  return work < (int64_t{1} << 16) ? 1 : std::max(nthreads, 1);  // tiny: no fork/join cost
}

}  // namespace

extern "C" {

int snn_lif_forward(const float* x, const float* v0, const float* thr_n, float* spikes,
                    float* mem, float* final_v, int64_t T, int64_t N, float decay, float v_init,
                    float thr, int hard, int nthreads) {
  const Lif p{T, N, decay, v_init, thr, thr_n, hard != 0};
  const int nt = threads_for(T * N, nthreads);
  const int64_t chunk = chunk_length(N, nt, SNN_FWD_CHUNK);
  const int64_t chunks = (N + chunk - 1) / chunk;
  const int code = (p.hard ? 4 : 0) | (thr_n ? 2 : 0) | (mem ? 1 : 0);
  int status = 0;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * chunk, n = std::min(chunk, N - i0);
    float* v = nullptr;
    try {
      v = T == 1 ? nullptr : scratch(n);
    } catch (...) {
#pragma omp atomic write
      status = 1;
      continue;
    }
#define SNN_FWD(c, HARD, THR_N, MEM)                                              \
  case c:                                                                         \
    if (T == 1)                                                                   \
      forward_step<HARD, THR_N, MEM>(p, x, v0, spikes, mem, final_v, i0, n);      \
    else                                                                          \
      forward_chunk<HARD, THR_N, MEM>(p, x, v0, spikes, mem, final_v, v, i0, n); \
    break;
    switch (code) {
      SNN_FWD(0, false, false, false)
      SNN_FWD(1, false, false, true)
      SNN_FWD(2, false, true, false)
      SNN_FWD(3, false, true, true)
      SNN_FWD(4, true, false, false)
      SNN_FWD(5, true, false, true)
      SNN_FWD(6, true, true, false)
      default:
        SNN_FWD(7, true, true, true)
    }
#undef SNN_FWD
  }
  return status;
}

int snn_lif_backward(const float* x, const float* v0, const float* thr_n, const float* gs,
                     int64_t gs_tstride, const float* gm, int64_t gm_tstride, int64_t gm_first,
                     float* gx, float* gv0, int64_t T, int64_t N, float decay, float v_init,
                     float thr, float gamma, float gamma2, int hard, int nthreads) {
  const Lif p{T, N, decay, v_init, thr, thr_n, hard != 0};
  const Grads g{gs, gs_tstride, gm, gm_tstride, gm_first, gx, gv0, gamma, gamma2};
  const int nt = threads_for(T * N, nthreads);
  const int64_t chunk = chunk_length(N, nt, SNN_BWD_CHUNK);
  const int64_t chunks = (N + chunk - 1) / chunk;
  int status = 0;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * chunk, n = std::min(chunk, N - i0);
    float* gnext = nullptr;
    try {
      gnext = scratch(n);
    } catch (...) {
#pragma omp atomic write
      status = 1;
      continue;
    }
    if (p.hard) {
      if (thr_n) backward_chunk<true, true>(p, g, x, v0, gnext, i0, n);
      else backward_chunk<true, false>(p, g, x, v0, gnext, i0, n);
    } else {
      if (thr_n) backward_chunk<false, true>(p, g, x, v0, gnext, i0, n);
      else backward_chunk<false, false>(p, g, x, v0, gnext, i0, n);
    }
  }
  return status;
}

// The elementwise passes of the RCS regulariser on one LIF layer (snnlib/regularisers.py,
// rcs_snn), fused: rows are the T*B (step, sample) pairs of F features, the threshold is one
// value. Each expression repeats the PyTorch operations it replaces, in their order:
//   response:  r = s + relu(m / thr)              (relu keeps a NaN, as clamp_min does)
//   products:  p = r * ref[b],  q = r * r         (ref: the sample's reference response)
//   backward:  g_r = (g_q * r + g_q * r) + g_p * ref[b]   (autograd's accumulation order)
//              g_m = (relu(m / thr) <= 0 ? 0 : g_r) / thr  (threshold_backward, then div)
// with g_p, g_q the gradients of the row sums of p and q (one value per row). The products
// and the backward recompute r from s and m rather than storing it.
static inline float relu_div(float m, float thr) {
  const float a = m / thr;
  return a < 0.f ? 0.f : a;
}

void snn_rcs_response(const float* s, const float* m, float* r, int64_t n, float thr,
                      int nthreads) {
  const int nt = threads_for(n, nthreads);
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t i = 0; i < n; ++i) r[i] = s[i] + relu_div(m[i], thr);
}

void snn_rcs_products(const float* s, const float* m, const float* ref, float* p, float* q,
                      int64_t T, int64_t B, int64_t F, float thr, int nthreads) {
  const int nt = threads_for(T * B * F, nthreads);
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t row = 0; row < T * B; ++row) {
    const float* sr = s + row * F;
    const float* mr = m + row * F;
    const float* rf = ref + (row % B) * F;
    float* pr = p + row * F;
    float* qr = q + row * F;
    for (int64_t f = 0; f < F; ++f) {
      const float r = sr[f] + relu_div(mr[f], thr);
      pr[f] = r * rf[f];
      qr[f] = r * r;
    }
  }
}

void snn_rcs_backward(const float* s, const float* m, const float* ref, const float* g_p,
                      const float* g_q, float* g_r, float* g_m, int64_t T, int64_t B, int64_t F,
                      float thr, int nthreads) {
  const int nt = threads_for(T * B * F, nthreads);
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t row = 0; row < T * B; ++row) {
    const float gp = g_p[row], gq = g_q[row];
    const float* sr = s + row * F;
    const float* mr = m + row * F;
    const float* rf = ref + (row % B) * F;
    float* grr = g_r + row * F;
    float* gmr = g_m + row * F;
    for (int64_t f = 0; f < F; ++f) {
      const float relu = relu_div(mr[f], thr);
      const float a = gq * (sr[f] + relu);
      const float g = (a + a) + gp * rf[f];
      grr[f] = g;
      gmr[f] = (relu <= 0.f ? 0.f : g) / thr;
    }
  }
}

}  // extern "C"
