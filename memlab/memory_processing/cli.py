"""`memlab mempipe`: the paper's four steps in one decode step (lab 08).
"""

from __future__ import annotations

from memlab.core import limits, models
from memlab.core.cli import print_json
from memlab.core.units import fmt_time


def _cmd_mempipe(args) -> int:
    from memlab.memory_processing import mempipe
    from memlab.core.loading import load
    loaded = load(args.model)
    cfg = mempipe.PipeConfig(page_tokens=args.page_tokens, budget_tokens=args.budget_tokens,
                             repeats=args.repeats)
    p = mempipe.profile_decode(loaded, args.context, cfg)
    if args.json:
        print_json(p.as_json())
        return 0
    print(f"{p.model_name}: one decode step after {p.context_tokens} cached tokens, "
          f"top {p.selected_pages} of {p.num_pages} pages of {p.page_tokens} per KV head")
    for part, share in p.shares().items():
        print(f"  {part:<6} {fmt_time(getattr(p, part + '_s')):>10}  {100 * share:5.1f}%")
    print(f"  step   {fmt_time(p.step_s):>10}  (memory processing {100 * p.memory_share:.1f}%; "
          f"transformers dense step {fmt_time(p.dense_step_s)})")
    print(f"  same next token as dense: {p.top1_matches_dense}, KL to dense {p.kl_to_dense:.2e} nats")
    return 0


def register(sub) -> None:
    s = sub.add_parser("mempipe", help="time the paper's four memory-processing steps in one decode step")
    s.add_argument("--context", type=limits.COUNT, default=2048, help="tokens in the KV cache before the step")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--page-tokens", type=limits.COUNT, default=16)
    s.add_argument("--budget-tokens", type=limits.COUNT, default=256, help="tokens attended per KV head")
    s.add_argument("--repeats", type=limits.COUNT, default=5)
    s.add_argument("--json", action="store_true", help="one JSON object with the StepProfile fields")
    s.set_defaults(func=_cmd_mempipe)
