"""Benchmark (printed, one run): each variant's decode as a ratio to fp32 and to its own bandwidth bound.

    PYTHONPATH=. python tests/benchmarks/bench_quant.py [--variants fp32,int8,...] [--threads N] [--quick]

Ratios are measured in one run on one machine (timings vary run to run and with other load);
nothing here asserts a time. The aim for memlab's int8/int4 paths: decode faster than fp32 with the
same answer. llama.cpp's Q4_1 row is printed when llama-cpp-python is installed, and otherwise
says why not.
"""

from __future__ import annotations

import argparse

import torch

from memlab.quantization import quantcompare, records
from memlab.core.hardware import card


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--variants", default="fp32,bf16,int8,int4,int4-fast,ao-int8,ao-int4,dyn-int8,gguf-q4_1")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = tuple(args.variants.split(","))
    cfg = (records.QuantConfig.quick(variants=names) if args.quick
           else records.QuantConfig(variants=names, repeats=args.repeats))
    hw = card()
    print(f"{hw.cpu_model}, {hw.num_cores} cores, torch threads {torch.get_num_threads()}, "
          f"torch {hw.torch_version}, {hw.measured_at}")
    bandwidth = quantcompare.read_bandwidth_bytes_per_s()
    results = quantcompare.compare(cfg, progress=False)
    bandwidth = (bandwidth + quantcompare.read_bandwidth_bytes_per_s()) / 2   # before and after
    print(f"read bandwidth {bandwidth / 1e9:.1f} GB/s (mean of before and after the runs)")
    print(f"{'variant':<12} {'MiB':>7} {'bits':>5} {'decode':>8} {'vs fp32':>8} {'bound':>8} {'of bound':>8} "
          f"{'ppl':>7} {'agree':>6} {'answer'}")
    by = {r.variant: r for r in results}
    for row in quantcompare.ratios(results, bandwidth):
        r = by[row["variant"]]
        if not r.is_available:
            print(f"{r.variant:<12} not run: {r.reason}")
            continue
        print(f"{r.variant:<12} {r.resident_bytes / 2**20:7.1f} {r.bits_per_weight:5.2f} "
              f"{r.decode_tok_per_s:8.2f} {row['vs_fp32']:7.2f}x {row['bound_tok_per_s']:8.1f} "
              f"{row['of_bound']:8.1%} {r.perplexity:7.3f} {r.agreement:6.2f} {r.answer[:40]!r}")
    for name, t in quantcompare.matmul_times(repeats=10).items():
        print(f"  lm_head GEMV (1 x 576 -> 49152) {name:<28} {t * 1e3:8.2f} ms")
    aim = [v for v in ("int8", "int4") if v in by and by[v].is_available and "fp32" in by]
    for v in aim:
        faster = by[v].decode_tok_per_s > by["fp32"].decode_tok_per_s
        same = by[v].answer == by["fp32"].answer
        print(f"aim for {v}: faster than fp32: {faster}; same answer: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
