"""Record a reference run: every lab in quick and in full mode, one after the other on a quiet machine,
with its peak memory (kernel + children) and wall time; the full-mode runs record their headline numbers
(MEMLAB_RECORD), and the lot becomes memlab/data/reference/<name>.json. The quick pass runs each lab under
nbval; the full pass executes it with its outputs kept (`execute_lab.py`: a failing cell fails it too) and
writes the executed notebook to reference/<name>/NN_name.ipynb, what the course site shows (`make site`).

    python tests/tools/reference_run.py --name xeon-8480-avx512-amx-2core [--labs 00,03] [--modes quick,full]
    make reference [NAME=epyc-avx2-2core]        # every lab; NAME defaults to this machine's class

Nothing else may run on the machine meanwhile: the numbers are timings. A lab that fails stops the
build (a reference run is a good run); its records stay in the work folder, and a rerun with `--work` that
folder and `--labs` the rest resumes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peak_memory  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REF = ROOT / "memlab" / "data" / "reference"
EXECUTED = ROOT / "reference"  # executed reference notebooks, one folder per machine


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="", help="the machine class (default: reference.machine_class of this machine's "
                                                "card, e.g. epyc-avx2-2core, xeon-avx512-amx-2core, or the GPU)")
    ap.add_argument("--labs", default="", help="comma-separated lab numbers (default: every lab)")
    ap.add_argument("--modes", default="quick,full", help="quick,full (default) or one of them; quick alone "
                    "rebuilds the reference only with --merge (the lab's full-mode records and time are kept)")
    ap.add_argument("--merge", action="store_true", help="keep the labs of the existing reference run that this run skips")
    ap.add_argument("--work", default="", help="folder for the per-lab records (default: a new temporary one)")
    ap.add_argument("--executed", default="", help="folder for the executed notebooks (default: reference/<name>/)")
    args = ap.parse_args()
    if not args.name:
        from dataclasses import asdict

        from memlab.core.hardware import card
        from memlab.course.reference import machine_class
        args.name = machine_class(asdict(card()))
        print(f"reference run {args.name} (this machine's class)", flush=True)
    labs = sorted((ROOT / "labs").glob("[0-9][0-9]_*.ipynb"))
    if args.labs:
        wanted = set(args.labs.split(","))
        labs = [p for p in labs if p.name[:2] in wanted]
    work = Path(args.work or tempfile.mkdtemp(prefix="memlab-reference-"))
    work.mkdir(parents=True, exist_ok=True)
    executed = Path(args.executed) if args.executed else EXECUTED / args.name
    done = work / "lab_runs.txt"  # written after each lab: a run stopped by a failing lab resumes with --work
    lab_runs: dict = json.loads(done.read_text()) if done.exists() else {}
    for lab in labs:
        key = lab.name[:2]
        for mode in args.modes.split(","):
            env = dict(os.environ, MEMLAB_SOLUTIONS="1", MEMLAB_QUICK="1" if mode == "quick" else "0")
            env.pop("MEMLAB_RECORD", None)
            if mode == "full":
                env["MEMLAB_RECORD"] = str(work)
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", str(lab)]
            if mode == "full":  # outputs kept: the executed notebook the site shows
                argv = [sys.executable, str(Path(__file__).with_name("execute_lab.py")), str(lab), str(executed)]
            print(f"lab {key} {mode} ...", flush=True)
            r = peak_memory.run(argv, env=env)
            print(f"lab {key} {mode}: exit {r['rc']}, {r['wall_s']:.0f} s, peak {r['peak_pss_bytes'] / 2**20:.0f} MiB PSS",
                  flush=True)
            if r["rc"] != 0:
                print(f"lab {key} failed in {mode} mode: no reference built (records in {work}; once fixed, resume "
                      f"with --work {work} --labs <this lab and those after it>)", file=sys.stderr)
                return 1
            lab_runs.setdefault(key, {})[f"{mode}_peak_bytes"] = r["peak_pss_bytes"]
            lab_runs[key][f"{mode}_wall_s"] = round(r["wall_s"], 1)
            done.write_text(json.dumps(lab_runs, indent=1))
    from memlab.course import reference
    old = REF / f"{args.name}.json"
    if args.merge and old.exists():  # a rerun of some labs: keep the others' records
        kept = json.loads(old.read_text())
        for lab, numbers in kept["labs"].items():
            if not (work / f"{lab}.json").exists():
                (work / f"{lab}.json").write_text(json.dumps({"lab": lab, "mode": "full", "card": kept["card"],
                                                             "numbers": numbers}))
        lab_runs = {**kept["lab_runs"], **{k: {**kept["lab_runs"].get(k, {}), **v} for k, v in lab_runs.items()}}
    if "full" in args.modes.split(",") or (args.merge and old.exists()):  # quick only, merged: the full records kept
        print("wrote", reference.build(work, args.name, lab_runs=lab_runs))
    else:
        print(json.dumps(lab_runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
