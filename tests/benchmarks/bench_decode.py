"""Benchmark (printed, one run): decode at the roof, every precision, beside llama.cpp (issue "Decode at the roof").

    PYTHONPATH=. python tests/benchmarks/bench_decode.py [--quick] [--compile] [--no-cold-start] [--no-paging]

In one run on one machine (nothing here asserts a time; ratios are what carry across machines):
  0. the CPU (model, SIMD/matrix flags, L3); the roof: every read kernel memlab has (torch's sum,
     numpy's BLAS GEMV), an independent memory benchmark (sysbench, when on PATH) and the fastest
     GEMV the kernel choice found, side by side (a GEMV faster than the roof would mean a wrong roof);
     the kernel table (memlab.core.kernels): each role's candidates, GB/s, and which won;
  1. the read bandwidth (memlab.core.ceilings' read kernels, before and after, mean) and each
     precision's fast-path decode tok/s (memlab.core.fastpath) as a share of its bound bandwidth / bytes,
     its speed-up over fp32 beside its byte ratio, and whether its tokens are the eager loop's;
  2. the same GGUF file under llama.cpp (when llama-cpp-python is installed): decode tok/s and the
     fastest memlab int4 path as a share of it;
  3. TTFT of the bundled question: the fast path's prefill + first pick against llama.cpp's;
  4. fresh-process cold start (load -> first token, imports apart) against its floor: the same run's
     cold read of the checkpoint, with as many reads in flight as the load and as long after its eviction
     as the child's load was (a virtual disk's speed can depend on both: the read right after the
     eviction and one read at a time are printed beside it) + the in-process time to the first token;
  5. bigger-than-RAM paged-prefetch decode against its overlap floor max(disk, compute), both from
     this run: the time its own layer reads took per forward pass, and the resident decode step.
  6. the fp32 fast path with torch's F.linear everywhere (no kernel choice) against the chosen kernels;
     fp32 and int4-fast with torch's operators between the chosen kernels against the step as chosen
     (in C where `core.cstep` measured it faster), and the rest of a step in each.
Aims (issue 30): fp32 >= 0.7 of its bound; memlab's fastest int4 >= 1.0x llama.cpp's Q4_1; every quantized path
>= 0.7 of its byte ratio; cold start <= 1.3x and paging <= 1.2x their floors. Each line says whether this run met it.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess

import torch

import memlab as ml
from memlab.core import ceilings, fastpath, generation, kernels, loading, pagecache
from memlab.quantization import fastcompare, quality, quantcompare, quantize, records


def _aim(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _sysbench_read_gb_per_s() -> float:
    """sysbench's sequential memory read, all threads, 1 GiB blocks (nan when sysbench is absent)."""
    if not shutil.which("sysbench"):
        return float("nan")
    out = subprocess.run(["sysbench", "memory", "--memory-oper=read", "--memory-block-size=1G",
                          "--memory-total-size=32G", f"--threads={torch.get_num_threads()}", "run"],
                         capture_output=True, text=True, timeout=120).stdout
    line = next((x for x in out.splitlines() if "MiB/sec" in x), "")
    return float(line.split("(")[-1].split()[0]) * 2**20 / 1e9 if line else float("nan")


def _roof(bw: float, rows) -> None:
    """The roof beside everything else that reads memory, and the kernel table of each variant."""
    rates = ceilings.stream(ceilings.array_size(), 5, read_only=True)
    gemv = max((t for r in rows if r.kernels for t in r.kernels.times), key=lambda t: t.gb_per_s)
    print(f"the roof: read kernels {', '.join(f'{k[5:]} {v:.1f}' for k, v in rates.items() if k.startswith('read:'))} GB/s; "
          f"sysbench memory read {_sysbench_read_gb_per_s():.1f} GB/s; fastest GEMV found {gemv.gb_per_s:.1f} GB/s "
          f"({gemv.kernel} on {gemv.role}, {gemv.bytes / 1e6:.0f} MB){'  <- faster than the roof: the roof is wrong' if gemv.gb_per_s * 1e9 > kernels.ROOF_SLACK * bw else ''}")
    print("the same bytes, read by different code (GB/s per role and torch threads; * = chosen):")
    for r in rows:
        if not r.kernels:
            continue
        k = r.kernels
        cells = [f"{t.role} {t.kernel}@{t.threads or 'own'} {t.gb_per_s:.1f}{'*' if d['chosen'] else ''}"
                 for t, d in zip(k.times, k.rows())]
        print(f"  {r.variant:<10} step {'in C' if k.step == 'c' else 'through torch'} on {k.step_threads} thread(s), "
              f"matmuls {k.matmul_s * 1e3:.1f} ms: " + " | ".join(cells))
        if k.steps:
            print(f"  {'':<10} whole steps weighed: " + ", ".join(f"{p} on {n} thread(s) {s * 1e3:.1f} ms" for p, n, s in k.steps))


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="short prompt, few tokens, one repeat")
    p.add_argument("--compile", action="store_true", help="also run the torch.compile'd step (compile time apart)")
    p.add_argument("--no-cold-start", action="store_true", help="skip the fresh-process cold start")
    p.add_argument("--no-paging", action="store_true", help="skip the bigger-than-RAM paged-prefetch run")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    hw = ml.hardware.card()
    print(f"{hw.cpu_model}, {hw.num_cores} cores, flags {hw.cpu_features}, L3 {hw.last_level_cache_bytes / 2**20:.0f} MiB, "
          f"torch threads {torch.get_num_threads()}, torch {hw.torch_version}")
    have_gguf = quantize.missing_reason(quantize.VARIANTS["gguf-q4_1"]) == ""
    names = ("fp32", "bf16", "int8", "int4", "int4-fast") + (("gguf-q4_1",) if have_gguf else ())
    cfg = (records.QuantConfig.quick(variants=names) if args.quick
           else records.QuantConfig(variants=names, repeats=args.repeats, new_tokens=64))
    bw = quantcompare.read_bandwidth_bytes_per_s()
    base = loading.load(cfg.model)
    eager = quantcompare.compare(cfg, progress=False, base=base)
    rows = fastcompare.compare(base, eager, bw, cfg, repeats=cfg.repeats, progress=False)
    prompt = quality.eval_ids(base.tokenizer, cfg.prompt_tokens)
    linear_run, linear_bytes, linear_mm, _ = fastcompare.measure(
        base.model, prompt, cfg.new_tokens, "fp32", cfg.repeats, kernels="linear")
    torch_steps = {v: fastcompare.measure(base.model, prompt, cfg.new_tokens, v, cfg.repeats, step="torch")
                   for v in ("fp32", "int4-fast")}
    compiled = []
    if args.compile:
        compiled = [(v, *fastcompare.measure(base.model, quality.eval_ids(base.tokenizer, cfg.prompt_tokens),
                                             cfg.new_tokens, v, cfg.repeats, compile=True)) for v in ("fp32", "int4-fast")]
    before, after = bw, quantcompare.read_bandwidth_bytes_per_s()
    bw = (before + after) / 2
    # the rows' bounds came from the roof read before the runs: every share below is of the printed mean (a
    # run once printed 22.6 GB/s while its bound column used the 16 GB/s read before, and fp32 sat at "1.07")
    rows = [dataclasses.replace(r, bound_tok_per_s=r.bound_tok_per_s * bw / before,
                                of_bound=r.of_bound * before / bw) for r in rows]
    by = {r.variant: r for r in eager}
    _roof(bw, rows)
    print(f"read bandwidth {bw / 1e9:.1f} GB/s (the fastest read kernel, mean of before {before / 1e9:.1f} and after "
          f"{after / 1e9:.1f}: the bounds and shares below use the mean)")
    print(f"{'variant':<10} {'MB/token':>9} {'eager':>7} {'fast':>7} {'bound':>7} {'of bound':>8} "
          f"{'vs fp32':>8} {'bytes x':>8} {'of bytes':>8}  same tokens as eager")
    for r in rows:
        print(f"{r.variant:<10} {r.streamed_bytes / 1e6:9.1f} {by[r.variant].decode_tok_per_s:7.1f} "
              f"{r.decode_tok_per_s:7.1f} {r.bound_tok_per_s:7.1f} {r.of_bound:8.0%} {r.vs_fp32:7.2f}x "
              f"{r.byte_ratio:7.2f}x {r.of_byte_ratio:8.0%}  {r.same_tokens} (first divergence {r.first_divergence})")
    for v, run, nbytes, *_ in compiled:
        print(f"compiled {v:<12} decode {run.decode_tok_per_s:7.1f} tok/s ({run.decode_tok_per_s * nbytes / bw:.0%} "
              f"of bound), compile {run.compile_s:.1f} s (paid once per process; inductor caches the kernels)")
    print(f"{'':<10} why below the bound: each step = matmuls on their own + the rest")
    for r in rows:
        print(f"{r.variant:<10} step {1e3 / r.decode_tok_per_s:6.1f} ms = matmuls {r.matmul_s * 1e3:6.1f} ms (kernels stream "
              f"{r.matmul_gb_per_s:5.1f} GB/s, {r.matmul_gb_per_s * 1e9 / bw:.0%} of the read bandwidth) + the rest "
              f"{r.other_s * 1e3:5.1f} ms")
    for r in rows:
        k = r.kernels
        print(f"{r.variant:<10} the choice predicted matmuls {k.matmul_s * 1e3:.1f} + rest {k.rest_s * 1e3:.1f} = "
              f"{(k.matmul_s + k.rest_s) * 1e3:.1f} ms a step; measured {1e3 / r.decode_tok_per_s:.1f} ms "
              f"({1e3 / r.decode_tok_per_s / ((k.matmul_s + k.rest_s) * 1e3):.2f}x: what the parts timed apart miss)")
    fast = {r.variant: r for r in rows}
    for v, (run, _, _, k) in torch_steps.items():
        c = fast[v].kernels
        print(f"{v:<10} the rest of a step: torch's operators {k.rest_s * 1e3:.2f} ms, the step in C "
              f"{min((o[2] for o in c.c_options), default=float('nan')) * 1e3:.2f} ms; decode through torch "
              f"{run.decode_tok_per_s:.1f} tok/s, as chosen ({'in C' if c.step == 'c' else 'through torch'}) "
              f"{fast[v].decode_tok_per_s:.1f} tok/s: {fast[v].decode_tok_per_s / run.decode_tok_per_s:.2f}x, "
              f"same tokens: {tuple(run.token_ids) == tuple(fast[v].tokens)}")
    print(f"fp32 fast path, torch's F.linear everywhere: {linear_run.decode_tok_per_s:.1f} tok/s (matmuls {linear_mm * 1e3:.1f} ms, "
          f"{linear_bytes / linear_mm / 1e9:.1f} GB/s); with the chosen kernels {fast['fp32'].decode_tok_per_s:.1f} tok/s: "
          f"{fast['fp32'].decode_tok_per_s / linear_run.decode_tok_per_s:.2f}x, same tokens: "
          f"{tuple(linear_run.token_ids) == tuple(fast['fp32'].tokens)}")
    print(f"aim fp32 >= 0.7 of its bound: {fast['fp32'].of_bound:.2f} {_aim(fast['fp32'].of_bound >= 0.7)}")
    for v in ("bf16", "int8", "int4", "int4-fast"):
        if v in fast:
            print(f"aim {v} >= 0.7 of its byte ratio: {fast[v].of_byte_ratio:.2f} {_aim(fast[v].of_byte_ratio >= 0.7)}")
    for r in rows:  # a kernel whose rate grows with its threads is bound by its arithmetic, not by the memory
        k, n = r.kernels, r.kernels.step_threads
        at = {m: sum(t.bytes for t in k.times if t.threads == m and (t.role, t.kernel) in k.kernels)
              / sum(t.seconds for t in k.times if t.threads == m and (t.role, t.kernel) in k.kernels) / 1e9
              for m in {t.threads for t in k.times if t.kernel in dict(k.kernels).values()}}
        if n > 1 and 1 in at and n in at:
            print(f"{r.variant:<10} its chosen kernels stream {at[n]:.1f} GB/s on {n} threads, {at[1]:.1f} on one "
                  f"({at[n] / at[1]:.2f}x; the roof {bw / 1e9:.1f} GB/s): "
                  + ("bound by arithmetic (more cores would read faster)" if at[n] / at[1] > 0.8 * n and at[n] < 0.7 * bw / 1e9
                     else "not by arithmetic alone: the memory binds too"))
    best4 = max((fast[v] for v in ("int4", "int4-fast") if v in fast), key=lambda r: r.decode_tok_per_s)
    question = generation.encode(base.tokenizer, quality.QUESTION)
    linear, head = fastcompare.LINEARS[best4.variant]
    engine = fastpath.FastLlama(base.model, len(question) + 2, linear=linear, lm_head=head)
    memlab_ttft = ml.measure.repeat(  # tokenize + prefill + the first pick, as a user's first token
        lambda: engine.prefill(torch.tensor([generation.encode(base.tokenizer, quality.QUESTION)])).argmax(-1),
        max(cfg.repeats, 3)).median
    if have_gguf:
        from memlab.quantization import gguf_reference
        gguf = by["gguf-q4_1"]
        print(f"llama.cpp Q4_1 decode {gguf.decode_tok_per_s:.1f} tok/s; memlab {best4.variant} fast path "
              f"{best4.decode_tok_per_s:.1f}: {best4.decode_tok_per_s / gguf.decode_tok_per_s:.2f}x "
              f"(aim >= 1.0: {_aim(best4.decode_tok_per_s >= gguf.decode_tok_per_s)})")
        for v, run, *_ in compiled:
            print(f"  compiled {v}: {run.decode_tok_per_s / gguf.decode_tok_per_s:.2f}x llama.cpp's decode")
        peer = gguf_reference.speed(gguf_reference.open_gguf(logits_all=False), question, 2, max(cfg.repeats, 3))
        print(f"TTFT of the bundled question ({len(question)} tokens): memlab {best4.variant} {memlab_ttft * 1e3:.1f} ms, "
              f"llama.cpp {peer['ttft_s'] * 1e3:.1f} ms: {memlab_ttft / peer['ttft_s']:.2f}x "
              f"(aim <= 1: {_aim(memlab_ttft <= peer['ttft_s'])})")
    else:
        print(f"llama.cpp: not run ({quantize.missing_reason(quantize.VARIANTS['gguf-q4_1']) or 'installed during the run'})")
        print(f"TTFT of the bundled question: memlab {best4.variant} {memlab_ttft * 1e3:.1f} ms (no llama.cpp to compare)")
    if not args.no_cold_start:
        import sys
        import time
        from memlab.ttft import latency
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        print(f"a fresh process that only imports torch: {time.perf_counter() - t0:.2f} s (the floor of any job's imports)")
        file = loading.checkpoint_file(ml.models.prepare(cfg.model))
        for strategy in ("resident", "mmap"):
            pairs = []
            for _ in range(1 if args.quick else 3):  # a disk read's time moves 2x from one to the next here: medians
                c = latency.cold_start(cfg.model, strategy, cold=True)
                # the child loads seconds after the checkpoint's eviction (its start and imports between): the
                # floor's cold read waits as long, since a virtual disk may serve a read made right after the
                # eviction faster (printed beside it), and keeps as many reads in flight as the load does
                gap, streams = c.spawn_s + c.imports_s, pagecache.READ_STREAMS  # as many reads in flight as the load
                read = pagecache.measure_read_rate(file, cold=True, settle_s=gap, streams=streams)
                at_once = pagecache.measure_read_rate(file, cold=True, streams=streams)
                serial = pagecache.measure_read_rate(file, cold=True, settle_s=gap)  # one read at a time
                warm = generation.generate(base, "Hello!", max_new_tokens=1, stop_at_eos=False).ttft_s
                load_to_token = c.load_s + c.tokenize_s + c.prefill_s + c.sample_s
                pairs.append((load_to_token / (read.read_s + warm), load_to_token, read.read_s + warm, read.read_s,
                              at_once.read_s, serial.read_s, warm, c))
            ratio, load_to_token, floor, read_s, at_once_s, serial_s, warm, c = sorted(pairs, key=lambda p: p[0])[len(pairs) // 2]
            print(f"cold start {strategy:<8} load -> first token {load_to_token:.2f} s, floor {floor:.2f} s "
                  f"(cold read, {streams} reads in flight as the load's, {c.spawn_s + c.imports_s:.1f} s after the eviction as "
                  f"the child's load: {read_s:.2f} s; right after it {at_once_s:.2f} s; one read at a time {serial_s:.2f} s; "
                  f"+ in-process TTFT {warm * 1e3:.0f} ms): {ratio:.2f}x, the median "
                  f"of {len(pairs)} ({', '.join(f'{p[0]:.2f}' for p in pairs)}) (aim <= 1.3: {_aim(ratio <= 1.3)}); "
                  f"of the load, the weights {c.weights_s:.2f} s; imports {c.imports_s:.2f} s, process start "
                  f"{c.spawn_s:.2f} s before it")
    if not args.no_paging:
        from memlab.ram_vs_disk import runs
        n = 8
        resident = runs.run_strategy(cfg.model, "resident", max_new_tokens=n)
        paged = runs.run_strategy(cfg.model, "paged-prefetch", bigger_than_ram=True, max_new_tokens=n)
        if paged.is_supported:
            disk_s = paged.layer_read_s / n  # this run's own reads: every forward pass reads every layer
            floor = max(disk_s, resident.tpot_s)
            print(f"bigger-than-RAM paged-prefetch TPOT {paged.tpot_s * 1e3:.0f} ms, overlap floor {floor * 1e3:.0f} ms = "
                  f"max(its layer reads {disk_s * 1e3:.0f} ms per pass, resident step {resident.tpot_s * 1e3:.0f} ms): "
                  f"{paged.tpot_s / floor:.2f}x (aim <= 1.2: {_aim(paged.tpot_s <= 1.2 * floor)}); it read "
                  f"{paged.layer_read_bytes / n / max(paged.layer_read_s / n, 1e-9) / 1e9:.2f} GB/s")
        else:
            print(f"bigger-than-RAM paging: not run ({paged.reason})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
