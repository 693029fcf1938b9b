/* memlab's GEMV kernels (memlab/core/ckernels.py compiles them once per machine with -O3 -march=native
   -fopenmp, together with step.c, which includes this file). One activation row x (K floats) times every
   row of a weight matrix W (N x K): y[n] = sum_k x[k] * W[n][k]. Batch-1 decode is exactly this, so each
   kernel's speed is how fast it streams W. Each kernel is one row's dot product (dot_*); gemv_* split the
   rows over `nt` OpenMP threads, and step.c calls the same dot products inside one whole decode step.

   1. gemv_f32   W fp32
   2. gemv_bf16  W bf16 (the top 16 bits of an fp32: widened by a shift)
   3. gemv_q8    W int8 codes, one bf16 scale per row: w = s * q
   4. gemv_q4    W 4-bit codes, a bf16 scale s and zero z per group of 32: w = (q - 8) * s + z
                 (with AVX2: integer dot products against the activation rounded to int8 per group)
   5. read_f32   no W: the sum of n floats, the memory roof's read kernel "c" (core/ceilings.py)
   6. gemm_f32, gemm_bf16  M activation rows (M x K) times W: y (M x N), each weight row read once for all
                 M rows (a verify of k drafts, a batch): two weight rows against up to six activation
                 rows at a time, one vector sum per pair (up to 12 of AVX2's 16 registers), so each chunk
                 of W loaded is used by every row; the next rows find the two weight rows in L1, not DRAM
   The float loops keep 32 partial sums so that the compiler's vectors run independent chains (one
   accumulator waits on each FMA's latency and reads a cache no faster than DRAM).
   With AVX2 + FMA the int8/int4 loops are written with intrinsics (the compiler does not
   vectorize the nibble unpacking well); elsewhere plain C loops that any compiler vectorizes. */
#include <stdint.h>
#include <string.h>
#include <math.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HAVE_AVX2 1
static inline float hsum(__m256 v){ __m128 a=_mm_add_ps(_mm256_castps256_ps128(v),_mm256_extractf128_ps(v,1));
  a=_mm_add_ps(a,_mm_movehl_ps(a,a)); a=_mm_add_ss(a,_mm_shuffle_ps(a,a,1)); return _mm_cvtss_f32(a); }
#endif
/* software prefetch in the GEMV loops: the weight bytes this far ahead, asked for before the loop reaches them.
   Without it one thread streamed bf16, int8 and int4 weights at 0.55-0.65x its fp32 rate and two threads read
   13, 11 and 12 GB/s; with it 21, 16 and 17 (fp32 20 -> 23) on a Xeon (AVX-512, 260 MiB L3, 2 vCPUs); 4-16 KiB
   ahead did about as well, 1 KiB and 32 KiB worse. A prefetch never faults: past the last row it reads nothing. */
#define PF_GEMV 8192
#define PF(p) __builtin_prefetch((const char*)(p)+PF_GEMV, 0, 3)
static inline float bf16f(uint16_t h){ uint32_t u=(uint32_t)h<<16; float f; memcpy(&f,&u,4); return f; }

static inline float dot_f32(const float* x, const float* r, int K){
  float s[32]={0}, a=0.f; int k=0;
  for(;k+32<=K;k+=32){  /* 32 partial sums: four vectors' worth of independent FMA chains */
    PF(r+k); PF(r+k+16);
    for(int i=0;i<32;i++) s[i]+=x[k+i]*r[k+i]; }
  for(;k<K;k++) a+=x[k]*r[k];
  for(int i=0;i<32;i++) a+=s[i];
  return a;
}
static inline float dot_bf16(const float* x, const uint16_t* r, int K){
  float s[32]={0}, a=0.f; int k=0;
  for(;k+32<=K;k+=32){
    PF(r+k);
    for(int i=0;i<32;i++) s[i]+=x[k+i]*bf16f(r[k+i]); }
  for(;k<K;k++) a+=x[k]*bf16f(r[k]);
  for(int i=0;i<32;i++) a+=s[i];
  return a;
}
static inline float dot_q8(const float* x, const int8_t* r, uint16_t scale, int K){
  float a=0.f; int k=0;
#ifdef HAVE_AVX2
  __m256 a0=_mm256_setzero_ps(), a1=_mm256_setzero_ps();
  for(;k+16<=K;k+=16){
    if(!(k&63)) PF(r+k);
    __m128i b=_mm_loadu_si128((const __m128i*)(r+k));
    __m256 w0=_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
    __m256 w1=_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b,8)));
    a0=_mm256_fmadd_ps(_mm256_loadu_ps(x+k),w0,a0); a1=_mm256_fmadd_ps(_mm256_loadu_ps(x+k+8),w1,a1); }
  a=hsum(_mm256_add_ps(a0,a1));
#endif
  for(;k<K;k++) a+=x[k]*(float)r[k];
  return a*bf16f(scale);
}
/* q4: codes (N, K/2): in group g (32 weights) byte j holds q[32g+j] (low nibble) and q[32g+16+j] (high);
   sz (N, K/32, 2) bf16: scale s and zero z, w = (q - 8) * s + z. So y[n] = sum_g s*(q . x_g) + (z - 8s)*sum(x_g).
   With AVX2 the activation is rounded to int8 per group once per GEMV (q4_prep: x ~ dx * xq,
   dx = max|x_g| / 127, as llama.cpp does), so q . xq is an integer dot product of 32 bytes in two
   instructions (maddubs, madd); the zero point's term keeps the exact float sum xs of x_g. */
static void q4_prep(const float* x, int K, int8_t* xq, float* dx, float* xs){
  for(int g=0;g<K/32;g++){ float m=0.f, t=0.f;
    for(int j=0;j<32;j++){ float v=x[32*g+j]; t+=v; m=fabsf(v)>m?fabsf(v):m; }
    xs[g]=t; dx[g]=m/127.f; float inv=m>0.f?127.f/m:0.f;
    for(int j=0;j<32;j++) xq[32*g+j]=(int8_t)lrintf(x[32*g+j]*inv); }
}
static inline float dot_q4(const float* x, const int8_t* xq, const float* dx, const float* xs,
                           const uint8_t* r, const uint16_t* q, int K){
  int G=K/32, g=0; float a=0.f;
#ifdef HAVE_AVX2
  (void)x;
  __m256 acc=_mm256_setzero_ps(), zacc=_mm256_setzero_ps(); const __m128i m4=_mm_set1_epi8(15);
  const __m256i ones=_mm256_set1_epi16(1), hi=_mm256_set1_epi32((int)0xffff0000);
  float sc[8] __attribute__((aligned(32)));
  for(;g+8<=G;g+=8){  /* eight groups' scales and zeros at once: (s, z) bf16 pairs are 32-bit lanes */
    PF(r+16*g); PF(r+16*g+64); __builtin_prefetch((const char*)(q+2*g)+PF_GEMV/4, 0, 3);  /* 4 bytes of sz per 16 */
    __m256i szv=_mm256_loadu_si256((const __m256i*)(q+2*g));
    __m256 sv=_mm256_castsi256_ps(_mm256_slli_epi32(szv,16)), zv=_mm256_castsi256_ps(_mm256_and_si256(szv,hi));
    zacc=_mm256_fmadd_ps(_mm256_fnmadd_ps(_mm256_set1_ps(8.f),sv,zv),_mm256_loadu_ps(xs+g),zacc);
    _mm256_store_ps(sc,_mm256_mul_ps(sv,_mm256_loadu_ps(dx+g)));
    for(int j=0;j<8;j++){
      __m128i b=_mm_loadu_si128((const __m128i*)(r+16*(g+j)));
      __m256i codes=_mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b,4),m4), _mm_and_si128(b,m4));
      __m256i d=_mm256_madd_epi16(_mm256_maddubs_epi16(codes,_mm256_loadu_si256((const __m256i*)(xq+32*(g+j)))),ones);
      acc=_mm256_fmadd_ps(_mm256_set1_ps(sc[j]),_mm256_cvtepi32_ps(d),acc); }
  }
  for(;g<G;g++){
    __m128i b=_mm_loadu_si128((const __m128i*)(r+16*g));
    __m256i codes=_mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b,4),m4), _mm_and_si128(b,m4));
    __m256i d=_mm256_madd_epi16(_mm256_maddubs_epi16(codes,_mm256_loadu_si256((const __m256i*)(xq+32*g))),ones);
    float s=bf16f(q[2*g]), z=bf16f(q[2*g+1]);
    acc=_mm256_fmadd_ps(_mm256_set1_ps(s*dx[g]),_mm256_cvtepi32_ps(d),acc);
    a+=(z-8.f*s)*xs[g]; }
  a+=hsum(_mm256_add_ps(acc,zacc));
#else
  (void)xq; (void)dx;
  for(;g<G;g++){ const uint8_t* b=r+16*g; const float* xg=x+32*g; float d=0.f;
    if(!(g&3)) PF(b);
    for(int j=0;j<16;j++) d+=xg[j]*(float)(b[j]&15)+xg[j+16]*(float)(b[j]>>4);
    float s=bf16f(q[2*g]), z=bf16f(q[2*g+1]);
    a+=s*d+(z-8.f*s)*xs[g]; }
#endif
  return a;
}

void gemv_f32(const float* x, const float* w, float* y, int N, int K, int nt){
  #pragma omp parallel for schedule(static) num_threads(nt)
  for(int n=0;n<N;n++) y[n]=dot_f32(x, w+(int64_t)n*K, K);
}
void gemv_bf16(const float* x, const uint16_t* w, float* y, int N, int K, int nt){
  #pragma omp parallel for schedule(static) num_threads(nt)
  for(int n=0;n<N;n++) y[n]=dot_bf16(x, w+(int64_t)n*K, K);
}
void gemv_q8(const float* x, const int8_t* w, const uint16_t* s, float* y, int N, int K, int nt){
  #pragma omp parallel for schedule(static) num_threads(nt)
  for(int n=0;n<N;n++) y[n]=dot_q8(x, w+(int64_t)n*K, s[n], K);
}
void gemv_q4(const float* x, const uint8_t* w, const uint16_t* sz, float* y, int N, int K, int nt){
  int G=K/32; float xs[G], dx[G];
  int8_t xq[K] __attribute__((aligned(32)));
  q4_prep(x, K, xq, dx, xs);
  #pragma omp parallel for schedule(static) num_threads(nt)
  for(int n=0;n<N;n++) y[n]=dot_q4(x, xq, dx, xs, w+(int64_t)n*(K/2), sz+(int64_t)n*G*2, K);
}

float read_f32(const float* a, int64_t n, int nt){
  float t=0.f; int64_t blocks=n/4096;
  #pragma omp parallel for schedule(static) num_threads(nt) reduction(+:t)
  for(int64_t b=0;b<blocks;b++){ const float* p=a+b*4096; float s[32]={0}, u=0.f;
    for(int j=0;j<4096;j+=32)
      for(int i=0;i<32;i++) s[i]+=p[j+i];
    for(int i=0;i<32;i++) u+=s[i];
    t+=u; }
  for(int64_t k=blocks*4096;k<n;k++) t+=a[k];
  return t;
}

/* 6. gemm: rows n, n+1 (nr of them) of W against mb <= 6 activation rows; always inlined with a constant mb,
   so the sums stay in registers. Each (row, weight row) sum runs in one order whatever M is. */
#ifdef HAVE_AVX2

/* software prefetch distance: the weight pair this many bytes ahead (the hardware prefetcher alone fell
   behind the blocked loop: 5 rows streamed at 0.6x one row's rate on an AVX2 EPYC; 32 KiB ahead: 0.8x) */
#define PF_BYTES 32768
static inline __m256 ld8_f32(const float* p){ return _mm256_loadu_ps(p); }
static inline __m256 ld8_bf16(const uint16_t* p){
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)),16)); }
#define GEMM_BLOCK(NAME, T, LOAD, CONV, DOT) \
static inline __attribute__((always_inline)) void NAME(const float* x, const T* w, float* y, int mb, int nr, \
                                                       int N, int K, int n){ \
  const T* w0=w+(int64_t)n*K; const T* w1=w0+(nr>1?K:0); __m256 a[6][2]; int k=0; \
  for(int b=0;b<6;b++){ a[b][0]=_mm256_setzero_ps(); a[b][1]=_mm256_setzero_ps(); } \
  for(;k+8<=K;k+=8){ __m256 r0=LOAD(w0+k), r1=LOAD(w1+k); \
    _mm_prefetch((const char*)(w0+2*k)+PF_BYTES, _MM_HINT_T0); /* 2k: the pair's two rows */ \
    for(int b=0;b<mb;b++){ __m256 v=_mm256_loadu_ps(x+(int64_t)b*K+k); \
      a[b][0]=_mm256_fmadd_ps(v,r0,a[b][0]); a[b][1]=_mm256_fmadd_ps(v,r1,a[b][1]); } } \
  for(int b=0;b<mb;b++){ float s0=hsum(a[b][0]), s1=hsum(a[b][1]); const float* xb=x+(int64_t)b*K; \
    for(int j=k;j<K;j++){ s0+=xb[j]*CONV(w0[j]); s1+=xb[j]*CONV(w1[j]); } \
    y[(int64_t)b*N+n]=s0; if(nr>1) y[(int64_t)b*N+n+1]=s1; } }
#else  /* no AVX2: each (row, weight row) pair by the GEMV's dot product; W's two rows stay in cache */
#define GEMM_BLOCK(NAME, T, LOAD, CONV, DOT) \
static inline void NAME(const float* x, const T* w, float* y, int mb, int nr, int N, int K, int n){ \
  for(int r=0;r<nr;r++) for(int b=0;b<mb;b++) y[(int64_t)b*N+n+r]=DOT(x+(int64_t)b*K, w+(int64_t)(n+r)*K, K); }
#endif
static inline __attribute__((unused)) float cvt_f32(float v){ return v; }
GEMM_BLOCK(block_f32, float, ld8_f32, cvt_f32, dot_f32)
GEMM_BLOCK(block_bf16, uint16_t, ld8_bf16, bf16f, dot_bf16)
/* weight rows n and n + 1 (n alone at the end) against all M rows, in ceil(M / 6) blocks of near-equal size
   (9 rows: 5 + 4, not 6 + 3: a small block's few sums wait on each FMA's latency) */
#define GEMM_PAIR(NAME, T, BLOCK) \
static inline void NAME(const float* x, const T* w, float* y, int M, int N, int K, int n){ \
  int nr=n+1<N?2:1, blocks=(M+5)/6; \
  for(int i=0,b=0;i<blocks;i++){ int mb=(M-b)/(blocks-i); const float* xb=x+(int64_t)b*K; float* yb=y+(int64_t)b*N; \
    switch(mb){ case 6: BLOCK(xb,w,yb,6,nr,N,K,n); break; case 5: BLOCK(xb,w,yb,5,nr,N,K,n); break; \
                case 4: BLOCK(xb,w,yb,4,nr,N,K,n); break; case 3: BLOCK(xb,w,yb,3,nr,N,K,n); break; \
                case 2: BLOCK(xb,w,yb,2,nr,N,K,n); break; default: BLOCK(xb,w,yb,1,nr,N,K,n); } \
    b+=mb; } }
GEMM_PAIR(gemm_pair_f32, float, block_f32)
GEMM_PAIR(gemm_pair_bf16, uint16_t, block_bf16)

void gemm_f32(const float* x, const float* w, float* y, int M, int N, int K, int nt){
  #pragma omp parallel for schedule(static) num_threads(nt)
  for(int p=0;p<(N+1)/2;p++) gemm_pair_f32(x, w, y, M, N, K, 2*p);
}
void gemm_bf16(const float* x, const uint16_t* w, float* y, int M, int N, int K, int nt){
  #pragma omp parallel for schedule(static) num_threads(nt)
  for(int p=0;p<(N+1)/2;p++) gemm_pair_bf16(x, w, y, M, N, K, 2*p);
}
