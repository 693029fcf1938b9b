"""Each residency strategy, cold or warm, answering one question (lab 02's table and figures).

`run_strategy` loads with one of `memlab.core.loading.STRATEGIES` (cold: the checkpoint evicted
from the page cache first), answers once, records load time, TTFT, TPOT, decode speed, peak RSS
and the bytes layer streaming read, then frees the model so the next run starts clean.
Where the platform cannot evict pages (no posix_fadvise: macOS), a cold or bigger-than-RAM run
is skipped: its record has `is_supported=False`, the reason, and nan times.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from memlab.core import generation, loading, models, pagecache


@dataclass(frozen=True, slots=True)
class StrategyRun:
    """One strategy, cold or warm: its load, then one question answered (lab 02's table)."""

    strategy: str
    is_cold: bool
    bigger_than_ram: bool
    page_cache_before: float
    load_s: float
    ttft_s: float               # in-process TTFT (tokenize + prefill + first sample)
    tpot_s: float
    decode_tok_per_s: float
    peak_rss_bytes: int         # max of the load's and the generation's peaks (whole process)
    weights_in_memory_bytes: int
    layer_read_bytes: int       # bytes read by layer streaming during generation (0 otherwise)
    text: str
    rss_added_bytes: int = 0    # peak_rss_bytes - the process's RSS before loading: this run's own
    is_supported: bool = True   # False: skipped, this platform cannot evict (times nan, bytes 0)
    reason: str = ""            # why it was skipped
    layer_read_s: float = 0.0   # seconds inside the layer reads (pread) during generation (0 otherwise)


def run_strategy(model: str = models.DEFAULT_MODEL, strategy: str = "resident", prompt="Hello!",
                 cold: bool = False, bigger_than_ram: bool = False, max_new_tokens: int = 16,
                 dtype: str = "fp32", device: str = "cpu") -> StrategyRun:
    """Load with `strategy` (cold: evicted first), answer `prompt` once, and free the model.

    A cold or bigger-than-RAM run where eviction is unsupported returns a skipped record (warns)."""
    import gc
    if (cold or bigger_than_ram) and not pagecache.supports_eviction():
        warnings.warn(pagecache.EVICTION_UNSUPPORTED, RuntimeWarning, stacklevel=2)
        nan = float("nan")
        return StrategyRun(strategy, cold, bigger_than_ram, nan, nan, nan, nan, nan, 0, 0, 0, "",
                           is_supported=False, reason=pagecache.EVICTION_UNSUPPORTED)
    gc.collect()  # a previous model may still map the file, and mapped pages cannot be evicted
    loaded = loading.load(model, strategy, device, dtype, cold=cold, bigger_than_ram=bigger_than_ram)
    r = generation.generate(loaded, prompt, max_new_tokens=max_new_tokens, stop_at_eos=False)
    stats = loaded.paging_stats()
    lr = loaded.result
    peak = max(lr.peak_rss_bytes, r.peak_rss_bytes)
    run = StrategyRun(strategy, cold, bigger_than_ram, lr.page_cache_before, lr.load_time_s, r.ttft_s,
                      r.tpot_s, r.decode_tok_per_s, peak, lr.weights_bytes,
                      stats.read_bytes if stats else 0, r.text, peak - lr.rss_before_bytes,
                      layer_read_s=stats.read_s if stats else 0.0)
    loaded.release()
    return run
