"""Request traces in Mooncake's published JSONL format, replayed by the simulator (lab 07).

Mooncake (Qin et al., FAST 2025) released its traces as JSON lines, one request per line:

    {"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, 48, ...]}

`timestamp` is the arrival in milliseconds, `input_length` and `output_length` are token counts,
and `hash_ids` name the prompt's 512-token blocks: two requests with the same id share that
block and everything before it, which is what a prefix cache can reuse.

  read_trace        parse a file into the simulator's RequestSpec list (one-line error per bad line)
  prefix_hit_share  the share of prompt blocks a cache of unbounded size would hit
  with_rate         the same requests, arrivals rescaled to a mean rate
  synthetic_trace   a small seeded trace in that format (the one shipped in memlab/data/traces/)
  write_trace       rows -> JSONL

To replay a real one, download e.g. `conversation_trace.jsonl` from the FAST25-release/traces
folder of github.com/kvcache-ai/Mooncake and run `memlab simulate --replay conversation_trace.jsonl`
(`--prefix-cache-blocks N` turns the cache on, `--rate R` rescales the arrivals).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from memlab.core.errors import InvalidArgumentError
from memlab.core.paths import data_path
from memlab.disaggregation.prefix_cache import leading_hits
from memlab.disaggregation.workload import RequestSpec

BLOCK_TOKENS = 512                     # Mooncake's hash_ids cover 512-token blocks
SYNTHETIC = "traces/synthetic_mooncake.jsonl"


def _bad(path, lineno: int, what: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{path}, line {lineno}: {what}")


def _count(row: dict, key: str, path, lineno: int, minimum: int) -> int:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise _bad(path, lineno, f"{key!r} must be an integer >= {minimum}, got {v!r}")
    return v


def _text(raw: bytes, path, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        packed = " (gzip-compressed: gunzip it first)" if lineno == 1 and raw.startswith(b"\x1f\x8b") else ""
        raise _bad(path, lineno, f"not text{packed}: a trace is a Mooncake-format JSONL file, one JSON "
                                 "object per line") from None


def parse_line(line: str, request_id: int, path="trace", lineno: int = 1) -> RequestSpec:
    """One JSONL line -> RequestSpec (arrival in s); output_length 0 still costs a prefill (1 token)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise _bad(path, lineno, f"not JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(row, dict):
        raise _bad(path, lineno, f"expected a JSON object, got {type(row).__name__}")
    missing = [k for k in ("timestamp", "input_length", "output_length", "hash_ids") if k not in row]
    if missing:
        raise _bad(path, lineno, f"missing field(s) {', '.join(missing)}")
    ts = row["timestamp"]
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not ts >= 0:
        raise _bad(path, lineno, f"'timestamp' must be a number of milliseconds >= 0, got {ts!r}")
    prompt = _count(row, "input_length", path, lineno, 1)
    output = _count(row, "output_length", path, lineno, 0)
    ids = row["hash_ids"]
    if not isinstance(ids, list) or any(isinstance(h, bool) or not isinstance(h, int) for h in ids):
        raise _bad(path, lineno, f"'hash_ids' must be a list of integers, got {str(ids)[:40]}")
    return RequestSpec(request_id, ts / 1000.0, prompt, max(1, output), tuple(ids))


def read_trace(path: str | Path, max_requests: int | None = None) -> tuple[RequestSpec, ...]:
    """Every request of a Mooncake-format JSONL file (blank lines skipped), ids in file order."""
    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"no trace file at {path}")
    specs: list[RequestSpec] = []
    with path.open("rb") as f:  # bytes, decoded line by line: a binary file is refused at its line
        for lineno, raw in enumerate(f, 1):
            line = _text(raw, path, lineno)
            if line.strip():
                specs.append(parse_line(line, len(specs), path, lineno))
                if max_requests is not None and len(specs) >= max_requests:
                    break
    if not specs:
        raise InvalidArgumentError(f"{path}: no requests in the trace")
    return tuple(specs)


def synthetic_path() -> Path:
    """The small synthetic trace shipped with memlab (made by `synthetic_trace()` with its defaults)."""
    return data_path(SYNTHETIC)


def prefix_hit_share(specs) -> float:
    """Share of all prompt blocks that are a leading run of blocks seen in an earlier request.

    Requests are taken in arrival order and every block ever seen counts (an unbounded cache);
    a request's hits stop at its first unseen block.
    """
    seen: set[int] = set()
    hits = total = 0
    for s in sorted(specs, key=lambda s: (s.arrived_at_s, s.request_id)):
        hits += leading_hits(s.block_hashes, seen)
        total += len(s.block_hashes)
        seen.update(s.block_hashes)
    return hits / total if total else 0.0


def with_rate(specs, rate_per_s: float) -> tuple[RequestSpec, ...]:
    """The same requests, arrival times scaled so that (n - 1) / span = rate_per_s (first arrival at 0)."""
    if not rate_per_s > 0:
        raise InvalidArgumentError(f"rate_per_s must be > 0 (requests per second), got {rate_per_s}")
    t = np.array([s.arrived_at_s for s in specs])
    span = float(t.max() - t.min())
    scale = (len(specs) - 1) / rate_per_s / span if span > 0 else 0.0
    return tuple(RequestSpec(s.request_id, (s.arrived_at_s - t.min()) * scale, s.prompt_tokens, s.output_tokens,
                             s.block_hashes) for s in specs)


def synthetic_trace(num_requests: int = 200, seed: int = 0, mean_gap_ms: float = 400.0,
                    num_system_prompts: int = 4, followup_share: float = 0.5, max_user_blocks: int = 3,
                    max_system_blocks: int = 3, max_blocks: int = 10,
                    output_tokens: tuple[int, int] = (16, 128)) -> list[dict]:
    """Mooncake-format rows with shared prefixes, seeded: chat sessions over a few system prompts.

    Each request either opens a session (a system prompt of 1..max_system_blocks blocks, drawn
    from `num_system_prompts`, then 1..max_user_blocks new blocks) or, with probability
    `followup_share`, continues a random open session: the previous prompt's full blocks, then
    new ones (its partial last block changed, so it gets a new id), unless that would pass
    `max_blocks` blocks (then it opens a new session). The last block of every
    prompt is partial (input_length = blocks x 512 - U[0, 511]). Arrivals are Poisson,
    `mean_gap_ms` apart on average; output lengths uniform in `output_tokens`.
    """
    rng = np.random.default_rng(seed)
    next_id = 0

    def fresh(n):
        nonlocal next_id
        next_id += n
        return list(range(next_id - n, next_id))
    systems = [fresh(int(rng.integers(1, max_system_blocks + 1))) for _ in range(num_system_prompts)]
    sessions: list[list[int]] = []
    rows, t = [], 0.0
    for _ in range(num_requests):
        t += rng.exponential(mean_gap_ms)
        user = fresh(int(rng.integers(1, max_user_blocks + 1)))
        k = int(rng.integers(len(sessions))) if sessions and rng.random() < followup_share else -1
        if k >= 0 and len(sessions[k]) - 1 + len(user) <= max_blocks:
            ids = sessions[k][:-1] + user
            sessions[k] = ids
        else:
            ids = systems[int(rng.integers(num_system_prompts))] + user
            sessions.append(ids)
        rows.append({"timestamp": int(t), "input_length": len(ids) * BLOCK_TOKENS - int(rng.integers(0, BLOCK_TOKENS)),
                     "output_length": int(rng.integers(output_tokens[0], output_tokens[1] + 1)), "hash_ids": ids})
    return rows


def write_trace(rows, path: str | Path) -> Path:
    """Rows (dicts) -> one compact JSON object per line, the Mooncake layout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, separators=(", ", ": ")) + "\n" for r in rows))
    return path
