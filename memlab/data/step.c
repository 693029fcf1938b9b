/* One whole decode step of a Llama-family model in one call (memlab/core/cstep.py drives it;
   compiled with gemv.c, whose dot products it calls). The same arithmetic as the fast path's torch step
   (memlab/core/fastpath.py): per layer RMSNorm, the fused q/k/v matmul, RoPE on q and k, the new k and v
   written into the static KV cache, attention of each query head over its kv head's cached positions,
   the o projection, RMSNorm, the fused gate/up matmul, SiLU(gate) * up, the down projection, and at
   the end the final norm and the LM head. Activations are fp32; the embedding, norms, RoPE tables and
   KV cache are the model's dtype (`half`: bf16, widened on read and rounded to nearest even on the
   cache write, where torch's bf16 step would round every activation too).

   Why in C: between its matmuls a step runs a few dozen small operations per layer, each of which
   costs torch microseconds of Python and dispatch whatever its size; here they cost what their bytes
   and FLOPs cost. The whole step runs in one OpenMP parallel region: every part splits its rows (weight
   rows, heads, sequences) over the threads, and a barrier separates each part from the next. B sequences step together (one position), each weight row
   read once for all of them. `skip_mm` leaves every matmul out (the step's rest alone, for timing it). */
#include <stdlib.h>
#include "gemv.c"

enum { F32 = 0, BF16 = 1, Q8 = 2, Q4 = 3 };
typedef struct { int kind, N, K; const void* w; const uint16_t* s; } mat_t;  /* s: q8 scales, q4 scales+zeros */
typedef struct { mat_t qkv, o, gate_up, down; const void *ln1, *ln2; float eps1, eps2; void *kc, *vc; } layer_t;
typedef struct {
  int L, d, H, KV, D, F, C;       /* layers, hidden, query heads, kv heads, head dim, ffn, cache positions */
  const void *embed, *norm, *cos, *sin;   /* embed (V, d); cos, sin (C, D), sin signed as the fast path's */
  int64_t erow, ecol;                     /* embed's strides (another engine may hold its bytes transposed) */
  float eps; const layer_t* layers; mat_t head;
  int half;                               /* embed, norms, cos, sin and the cache are bf16 (else fp32) */
} model_t;
typedef struct { float *x, *h, *qkv, *att, *gu, *tmp, *scores, *dx, *xs; int8_t* xq; } work_t;

/* element i of an fp32 or bf16 array, as a float; a float rounded to bf16 (nearest even) */
static inline float ld(const void* p, int64_t i, int half){
  return half ? bf16f(((const uint16_t*)p)[i]) : ((const float*)p)[i];
}
static inline uint16_t to_bf16(float f){ uint32_t u; memcpy(&u,&f,4); return (uint16_t)((u+0x7fffu+((u>>16)&1u))>>16); }

/* y = x W^T for B rows x (B, K) -> y (B, N), called by every thread of the region: W's rows split by
   `omp for` (its barrier ends it), each row read once for all B activation rows */
static void mv(const mat_t* m, const float* x, float* y, work_t* w, int skip, int B){
  if(skip) return;
  int N=m->N, K=m->K, G=K/32;
  if(B>1 && (m->kind==F32 || m->kind==BF16)){  /* float weights: gemv.c's blocked kernel (6) */
    #pragma omp for schedule(static)
    for(int p=0;p<(N+1)/2;p++){
      if(m->kind==F32) gemm_pair_f32(x, (const float*)m->w, y, B, N, K, 2*p);
      else gemm_pair_bf16(x, (const uint16_t*)m->w, y, B, N, K, 2*p);
    }
    return;
  }
  if(m->kind==Q4){
    #pragma omp for schedule(static)
    for(int b=0;b<B;b++) q4_prep(x+(int64_t)b*K, K, w->xq+(int64_t)b*K, w->dx+(int64_t)b*G, w->xs+(int64_t)b*G);
  }
  #pragma omp for schedule(static)
  for(int n=0;n<N;n++)
    for(int b=0;b<B;b++){
      const float* xb=x+(int64_t)b*K; float* yb=y+(int64_t)b*N;
      switch(m->kind){
        case F32:  yb[n]=dot_f32(xb, (const float*)m->w+(int64_t)n*K, K); break;
        case BF16: yb[n]=dot_bf16(xb, (const uint16_t*)m->w+(int64_t)n*K, K); break;
        case Q8:   yb[n]=dot_q8(xb, (const int8_t*)m->w+(int64_t)n*K, m->s[n], K); break;
        default:   yb[n]=dot_q4(xb, w->xq+(int64_t)b*K, w->dx+(int64_t)b*G, w->xs+(int64_t)b*G,
                                (const uint8_t*)m->w+(int64_t)n*(K/2), m->s+(int64_t)n*G*2, K);
      }
    }
}

static void rms_norm(const float* x, const void* g, float eps, float* y, int d, int half){
  float ss=0.f;
  for(int i=0;i<d;i++) ss+=x[i]*x[i];
  float r=1.f/sqrtf(ss/(float)d+eps);
  for(int i=0;i<d;i++) y[i]=ld(g,i,half)*(x[i]*r);
}

/* x*cos + roll(x, D/2)*sin on one head's D values (cos, sin: the rows of position `pos`) */
static void rope(float* v, const void* cos, const void* sin, int64_t at, int D, int half){
  float t[D];
  for(int i=0;i<D;i++) t[i]=v[i]*ld(cos,at+i,half)+v[(i+D/2)%D]*ld(sin,at+i,half);
  memcpy(v, t, sizeof(float)*D);
}
static void put(void* cache, int64_t at, const float* v, int D, int half){
  if(!half){ memcpy((float*)cache+at, v, sizeof(float)*D); return; }
  for(int i=0;i<D;i++) ((uint16_t*)cache)[at+i]=to_bf16(v[i]);
}

/* one query head over positions 0..pos of its kv head's cache (kc, vc start at that head); out (D) */
static void attend(const float* q, const void* kc, const void* vc, float* sc, float* out, int pos, int D, int half){
  float mx, sum=0.f, scale=1.f/sqrtf((float)D);
  for(int t=0;t<=pos;t++)
    sc[t]=(half ? dot_bf16(q, (const uint16_t*)kc+(int64_t)t*D, D) : dot_f32(q, (const float*)kc+(int64_t)t*D, D))*scale;
  mx=sc[0];
  for(int t=1;t<=pos;t++) mx=sc[t]>mx?sc[t]:mx;
  for(int t=0;t<=pos;t++){ sc[t]=expf(sc[t]-mx); sum+=sc[t]; }
  for(int i=0;i<D;i++) out[i]=0.f;
  for(int t=0;t<=pos;t++){ float p=sc[t]/sum;
    for(int i=0;i<D;i++) out[i]+=p*ld(vc,(int64_t)t*D+i,half); }
}

static int step_scratch(const model_t* m, work_t* w, int B){
  int QKV=(m->H+2*m->KV)*m->D, mx=m->d>m->F?m->d:m->F;
  mx=mx>m->H*m->D?mx:m->H*m->D;
  w->x=calloc((size_t)B*m->d,4); w->h=calloc((size_t)B*mx,4); w->qkv=calloc((size_t)B*QKV,4);
  w->att=calloc((size_t)B*m->H*m->D,4); w->gu=calloc((size_t)B*2*m->F,4); w->tmp=calloc((size_t)B*m->d,4);
  w->scores=calloc((size_t)B*m->H*m->C,4); w->dx=calloc((size_t)B*(mx/32+1),4); w->xs=calloc((size_t)B*(mx/32+1),4);
  w->xq=calloc((size_t)B*mx+32,1);
  return w->x&&w->h&&w->qkv&&w->att&&w->gu&&w->tmp&&w->scores&&w->dx&&w->xs&&w->xq;
}
static void step_free(work_t* w){
  free(w->x); free(w->h); free(w->qkv); free(w->att); free(w->gu); free(w->tmp); free(w->scores);
  free(w->dx); free(w->xs); free(w->xq);
}

/* the logits (B, V) of B sequences' tokens at position `pos` (the cache holds at least B sequences), or with
   `verify`, of B tokens of sequence 0 at positions pos .. pos + B - 1 (a verify of B - 1 drafts: row b attends
   to positions <= pos + b, and each weight row is read once for all B rows); 0, or -1 where the scratch
   could not be allocated */
int step_f32(const model_t* m, const int64_t* tokens, int B, int pos, float* logits, int nt, int skip_mm, int verify){
  work_t w; int H=m->H, KV=m->KV, D=m->D, d=m->d, F=m->F, C=m->C, group=H/KV, half=m->half, QKV=(H+2*KV)*D;
  if(!step_scratch(m, &w, B)){ step_free(&w); return -1; }
  for(int b=0;b<B;b++)
    for(int i=0;i<d;i++) w.x[(int64_t)b*d+i]=ld(m->embed, tokens[b]*m->erow+i*m->ecol, half);
  int64_t seq=(int64_t)KV*C*D;  /* one sequence's cache in one layer, elements */
  #pragma omp parallel num_threads(nt)
  {
    for(int l=0;l<m->L;l++){
      const layer_t* ly=&m->layers[l];
      #pragma omp for schedule(static)
      for(int b=0;b<B;b++) rms_norm(w.x+(int64_t)b*d, ly->ln1, ly->eps1, w.h+(int64_t)b*d, d, half);
      mv(&ly->qkv, w.h, w.qkv, &w, skip_mm, B);
      #pragma omp for schedule(static)
      for(int bj=0;bj<B*(H+2*KV);bj++){  /* RoPE on q and k heads; k and v into the cache at pos */
        int b=bj/(H+2*KV), j=bj%(H+2*KV), s=verify?0:b;  /* s: the sequence row b belongs to */
        int64_t at=(int64_t)(verify?pos+b:pos)*D;
        float* v=w.qkv+(int64_t)b*QKV+(int64_t)j*D;
        if(j<H+KV) rope(v, m->cos, m->sin, at, D, half);
        if(j>=H) put(j<H+KV ? ly->kc : ly->vc, s*seq+(int64_t)(j<H+KV ? j-H : j-H-KV)*C*D+at, v, D, half);
      }
      #pragma omp for schedule(static)
      for(int bh=0;bh<B*H;bh++){
        int b=bh/H, hq=bh%H, s=verify?0:b;
        int64_t head=(s*seq+(int64_t)(hq/group)*C*D)*(half?2:4);  /* bytes to this sequence's kv head */
        attend(w.qkv+(int64_t)b*QKV+(int64_t)hq*D, (const char*)ly->kc+head, (const char*)ly->vc+head,
               w.scores+(int64_t)bh*C, w.att+(int64_t)bh*D, verify?pos+b:pos, D, half);
      }
      mv(&ly->o, w.att, w.tmp, &w, skip_mm, B);
      #pragma omp for schedule(static)
      for(int b=0;b<B;b++){ float* x=w.x+(int64_t)b*d;
        for(int i=0;i<d;i++) x[i]+=w.tmp[(int64_t)b*d+i];
        rms_norm(x, ly->ln2, ly->eps2, w.h+(int64_t)b*d, d, half); }
      mv(&ly->gate_up, w.h, w.gu, &w, skip_mm, B);
      #pragma omp for schedule(static)
      for(int bi=0;bi<B*F;bi++){ int b=bi/F, i=bi%F; float g=w.gu[(int64_t)b*2*F+i];
        w.h[bi]=g/(1.f+expf(-g))*w.gu[(int64_t)b*2*F+F+i]; }
      mv(&ly->down, w.h, w.tmp, &w, skip_mm, B);
      #pragma omp for schedule(static)
      for(int bi=0;bi<B*d;bi++) w.x[bi]+=w.tmp[bi];
    }
    #pragma omp for schedule(static)
    for(int b=0;b<B;b++) rms_norm(w.x+(int64_t)b*d, m->norm, m->eps, w.h+(int64_t)b*d, d, half);
    mv(&m->head, w.h, logits, &w, skip_mm, B);
  }
  step_free(&w);
  return 0;
}

/* every matrix of `m` (count, one shape) applied to x (rows x K) in turn, in one parallel region as the step runs
   them: the C kernels' time without a Python call per matrix (core.kernels times kernel "c" with it) */
int gemv_all(const mat_t* m, int count, const float* x, float* y, int nt, int rows){
  int K=m[0].K; work_t w={0};
  w.dx=calloc((size_t)rows*(K/32+1),4); w.xs=calloc((size_t)rows*(K/32+1),4); w.xq=calloc((size_t)rows*K+32,1);
  if(!(w.dx&&w.xs&&w.xq)){ free(w.dx); free(w.xs); free(w.xq); return -1; }
  #pragma omp parallel num_threads(nt)
  for(int i=0;i<count;i++) mv(&m[i], x, y, &w, 0, rows);
  free(w.dx); free(w.xs); free(w.xq);
  return 0;
}
