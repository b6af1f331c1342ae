// emu.cpp: a host emulator for kernels.cu, built as a shared library by
// the Go tests (emu_test.go) and driven through the same launch path as
// the real driver. Device memory is host memory; a launch runs its blocks
// one after another, each block's threads as fibers (ucontext) that switch
// at barriers (a fiber is entered once with swapcontext, then switched
// with _setjmp/_longjmp, which skip the signal-mask system calls). Shuffles go through a per-warp exchange buffer between two
// warp barriers. A barrier that can never complete (threads of one warp
// waiting at different barriers, or a __syncthreads that some live thread
// never reaches) aborts the launch with an error instead of hanging.
#include "emu.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include <mutex>
#include <utility>

#include "../kernels.cu"

dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace {

enum State { RUN, WARP, BLOCK, DONE };

const size_t kStack = 256 << 10;

struct Fiber {
  ucontext_t ctx;
  jmp_buf jb;
  State st;
  bool started;
  char* stack;
};

Fiber fib[1024];
ucontext_t sched;
jmp_buf sched_jb;
int cur, nthreads;
uint64_t xchg[32][32];
void (*entry)(void**);
void** params;
std::mutex mu;

void yield_as(State s) {
  fib[cur].st = s;
  if (!_setjmp(fib[cur].jb)) _longjmp(sched_jb, 1);
}

void fiber_main() {
  entry(params);
  fib[cur].st = DONE;
  _longjmp(sched_jb, 1);
}

// run_block runs one block to completion; false on a deadlock.
bool run_block() {
  for (int t = 0; t < nthreads; t++) {
    Fiber& f = fib[t];
    if (!f.stack) f.stack = (char*)malloc(kStack);
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = kStack;
    f.ctx.uc_link = &sched;
    makecontext(&f.ctx, fiber_main, 0);
    f.st = RUN;
    f.started = false;
  }
  for (;;) {
    for (int t = 0; t < nthreads; t++) {
      if (fib[t].st != RUN) continue;
      cur = t;
      threadIdx = dim3{(unsigned)t % blockDim.x, (unsigned)t / blockDim.x % blockDim.y, (unsigned)t / (blockDim.x * blockDim.y)};
      if (!_setjmp(sched_jb)) {
        if (fib[t].started) _longjmp(fib[t].jb, 1);
        fib[t].started = true;
        swapcontext(&sched, &fib[t].ctx);
      }
    }
    bool live = false, released = false;
    for (int w = 0; w * 32 < nthreads; w++) {
      int waiting = 0, alive = 0;
      for (int t = w * 32; t < nthreads && t < w * 32 + 32; t++) {
        if (fib[t].st != DONE) alive++;
        if (fib[t].st == WARP) waiting++;
      }
      if (alive) live = true;
      if (waiting && waiting == alive) {
        for (int t = w * 32; t < nthreads && t < w * 32 + 32; t++)
          if (fib[t].st == WARP) fib[t].st = RUN;
        released = true;
      }
    }
    if (!live) return true;
    if (released) continue;
    int waiting = 0, alive = 0;
    for (int t = 0; t < nthreads; t++) {
      if (fib[t].st != DONE) alive++;
      if (fib[t].st == BLOCK) waiting++;
    }
    if (waiting && waiting == alive) {
      for (int t = 0; t < nthreads; t++)
        if (fib[t].st == BLOCK) fib[t].st = RUN;
      continue;
    }
    return false;
  }
}

// f16 conversions, as dtype.F16ToF32 / F32ToF16 (round to nearest even).
float h2f_impl(unsigned short h) {
  const unsigned sign = (unsigned)(h >> 15) << 31, exp = (h >> 10) & 0x1f;
  unsigned man = h & 0x3ff;
  unsigned u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | man << 13;
  } else if (exp != 0) {
    u = sign | (exp + 112) << 23 | man << 13;
  } else if (man == 0) {
    u = sign;
  } else {
    unsigned e = 113;
    while (!(man & 0x400)) man <<= 1, e--;
    u = sign | e << 23 | (man & 0x3ff) << 13;
  }
  return __uint_as_float(u);
}

unsigned short f2h_impl(float f) {
  const unsigned b = __float_as_uint(f);
  const unsigned short sign = (b >> 16) & 0x8000;
  const int exp = (b >> 23) & 0xff;
  const unsigned man = b & 0x7fffff;
  if (exp == 0xff) return man ? (sign | 0x7e00 | (man >> 13)) : (sign | 0x7c00);
  const int e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const unsigned m = man | 0x800000, shift = 14 - e, half = 1u << (shift - 1);
    unsigned r = m >> shift;
    const unsigned rem = m & ((1u << shift) - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return sign | r;
  }
  unsigned r = (unsigned)e << 10 | man >> 13;
  const unsigned rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
  return sign | r;
}

template <class... A, size_t... I>
void call(void (*f)(A...), void** p, std::index_sequence<I...>) {
  f(*(A*)p[I]...);
}
template <class... A>
void invoke(void (*f)(A...), void** p) {
  call(f, p, std::index_sequence_for<A...>{});
}

struct Entry {
  const char* name;
  void (*fn)(void**);
};

#define K(name) {#name, [](void** p) { invoke(name, p); }},
const Entry table[] = {
#include "table.inc"
};

}  // namespace

void emu_sync_warp() { yield_as(WARP); }
void emu_sync_block() { yield_as(BLOCK); }
void emu_xchg_put(int lane, uint64_t v) { xchg[cur / 32][lane] = v; }
uint64_t emu_xchg_get(int lane) { return xchg[cur / 32][lane]; }
float emu_h2f(unsigned short h) { return h2f_impl(h); }
unsigned short emu_f2h(float f) { return f2h_impl(f); }

extern "C" {

// emu_launch runs kernel name over the grid; 0 on success, 1 for an
// unknown kernel, 2 for a bad block size, 3 for a deadlock.
int emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, void** p) {
  std::lock_guard<std::mutex> lock(mu);
  entry = nullptr;
  for (const Entry& e : table)
    if (!strcmp(e.name, name)) entry = e.fn;
  if (!entry) return 1;
  nthreads = (int)(bx * by * bz);
  if (nthreads <= 0 || nthreads > 1024 || nthreads % 32) return 2;
  params = p;
  gridDim = dim3{gx, gy, gz};
  blockDim = dim3{bx, by, bz};
  for (unsigned z = 0; z < gz; z++)
    for (unsigned y = 0; y < gy; y++)
      for (unsigned x = 0; x < gx; x++) {
        blockIdx = dim3{x, y, z};
        if (!run_block()) {
          fprintf(stderr, "emu: %s deadlocked in block (%u,%u,%u)\n", name, x, y, z);
          return 3;
        }
      }
  return 0;
}

uint64_t emu_malloc(uint64_t n) { return (uint64_t)(uintptr_t)calloc(1, n ? n : 1); }
void emu_free(uint64_t p) { free((void*)(uintptr_t)p); }
void emu_memset(uint64_t p, int v, uint64_t n) { memset((void*)(uintptr_t)p, v, n); }
void emu_memcpy(uint64_t dst, uint64_t src, uint64_t n) { memcpy((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, n); }

}  // extern "C"
