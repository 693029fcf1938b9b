"""A request-level serving simulator: prefill and decode pools, a KV link, SimPy (lab 07).

The idea it teaches: once prefill and decode run on separate workers they stop interfering,
at the price of shipping the KV cache over a link; whether that pays depends on load, the
prefill:decode worker ratio and the link. The simulator answers that at cluster scale, from a
`Profile` measured on this machine (`memlab.disaggregation.calibration`) or derived from a spec sheet.

Modes, one line each:
  1. "disagg":    P prefill workers -> KV link -> D decode workers (continuous batching).
  2. "colocated": P + D workers that each prefill and decode; a waiting prefill interrupts
                  the decode batch at the next step boundary (prefill priority, as vLLM v0).
  3. "colocated" with `prefill_chunk_tokens=C` (Sarathi-Serve's chunked prefill): each step
                  runs up to C prompt tokens together with one step of every running decode.
Option of every mode: `prefix_cache_blocks` (an LRU of KV blocks shared by the prefill workers,
`prefix_cache.py`): a prompt's leading cached blocks are skipped, so its prefill costs only
the uncached tokens.

Cost model (from the profile, all in seconds):
  prefill of a batch   = prefill_base_s + prefill_per_token_s * sum(n) + prefill_per_token2_s * sum(n^2)
  one decode step      = decode_base_s + decode_per_seq_s * B + decode_per_ctx_token_s * sum(context)
  KV transfer          = link_latency_s + kv_bytes / link_bytes_per_s  (one transfer at a time per link)
  mixed (chunked) step = max(chunk's prefill time, decode_base_s) + decode_per_seq_s * B
                         + decode_per_ctx_token_s * sum(context): one pass over the weights serves
                         both, so the decodes ride along for free while the chunk's arithmetic
                         takes longer than the weight read (`Profile.mixed_step_s`)

A decode worker does not wake up per token: it jumps to the next completion (a closed-form sum of
the per-step times) and is interrupted only when a new request can join its batch, so the event
count grows with requests, not tokens. Metrics: TTFT = first token (end of prefill) - arrival;
TPOT = (finish - first token) / (output_tokens - 1), so it includes the transfer and decode
queueing, as DistServe counts it; E2E = finish - arrival.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import simpy

from memlab.disaggregation.prefix_cache import PrefixCache
from memlab.disaggregation.profiles import Profile
from memlab.disaggregation.workload import Cluster, RequestRecord, RequestSpec, Traffic


class _Req:
    """Mutable per-request state while it is in flight (turned into a RequestRecord at the end)."""

    __slots__ = ("spec", "pw", "dw", "ctx0", "prefill_started", "prefill_ended", "first_token",
                 "transfer_started", "transfer_ended", "decode_started", "cached", "done")

    def __init__(self, spec: RequestSpec):
        self.spec, self.pw, self.dw = spec, -1, -1
        self.prefill_started = self.transfer_started = self.transfer_ended = self.decode_started = None
        self.cached = self.done = 0              # prompt tokens from the prefix cache; prefilled so far

    @property
    def todo(self) -> int:
        """Prompt tokens this request's prefill still has to compute."""
        return self.spec.prompt_tokens - self.cached


class Worker:
    """One worker; prefills if `does_prefill`, decodes with continuous batching if `does_decode`."""

    def __init__(self, sim: "_Sim", index: int, does_prefill: bool, does_decode: bool):
        self.sim, self.index = sim, index
        self.does_prefill, self.does_decode = does_prefill, does_decode
        self.prefill_queue: deque[_Req] = deque()
        self.decode_queue: deque[_Req] = deque()   # KV here, waiting for a batch slot
        self.running: list = []                     # heap of (finish_step, request_id, _Req)
        self.step = 0                               # decode steps done so far
        self.ctx_base = 0                           # sum over running of (context at join - step at join)
        self.wakeup = None
        self.interruptible = False
        self.proc = sim.env.process(self.run())

    def load(self) -> int:
        return len(self.prefill_queue) + len(self.decode_queue) + len(self.running)

    def notify(self):
        """A request arrived: wake an idle worker, or cut a decode run short if it can join."""
        if self.wakeup is not None and not self.wakeup.triggered:
            self.wakeup.succeed()
        elif self.interruptible and len(self.running) < self.sim.cluster.max_decode_batch:
            self.interruptible = False
            self.proc.interrupt()

    def run(self):
        env, cl, prof = self.sim.env, self.sim.cluster, self.sim.profile
        while True:
            self._admit()
            decoding = self.load() - len(self.prefill_queue)           # running + waiting for a slot
            if cl.prefill_chunk_tokens and self.prefill_queue and decoding < cl.max_decode_batch:
                yield from self._mixed_step()
            elif (not cl.prefill_chunk_tokens and self.prefill_queue
                  and (not self.does_decode or len(self.running) < cl.max_decode_batch)):
                batch, tokens = [], 0
                room = cl.max_decode_batch - len(self.running) if self.does_decode else cl.max_prefill_batch
                while (self.prefill_queue and len(batch) < min(cl.max_prefill_batch, room)
                       and (not batch or tokens + self.prefill_queue[0].spec.prompt_tokens <= cl.max_prefill_batch_tokens)):
                    r = self.prefill_queue.popleft()
                    self._start_prefill(r)
                    batch.append(r)
                    tokens += r.spec.prompt_tokens
                yield env.timeout(prof.prefill_s([r.todo for r in batch]))
                for r in batch:
                    self._end_prefill(r)
            elif self.running:
                yield from self._decode()
            else:
                self.wakeup = env.event()
                yield self.wakeup
                self.wakeup = None

    def _start_prefill(self, r: _Req):
        r.prefill_started, r.pw = self.sim.env.now, self.index
        r.cached = self.sim.cached_tokens(r)

    def _end_prefill(self, r: _Req):
        """The prompt's KV exists: remember its blocks, then finish, decode here, or ship it."""
        self.sim.remember(r)
        r.first_token = r.prefill_ended = self.sim.env.now
        if r.spec.output_tokens <= 1:
            self.sim.finish(r, transfer=False)
        elif self.does_decode:
            r.transfer_started = r.transfer_ended = r.prefill_ended
            self.decode_queue.append(r)
        else:
            self.sim.send(self, r)

    def _mixed_step(self):
        """One chunked-prefill step: up to C prompt tokens from the queue's head, plus one step of every decode."""
        env, cl = self.sim.env, self.sim.cluster
        budget, pieces = cl.prefill_chunk_tokens, []
        room = cl.max_decode_batch - (self.load() - len(self.prefill_queue))
        for r in self.prefill_queue:
            if budget == 0 or len(pieces) == room:
                break
            if r.prefill_started is None:
                self._start_prefill(r)
            n = min(budget, r.todo - r.done)
            pieces.append((r, r.done, n))
            budget -= n
        b = len(self.running)
        yield env.timeout(self.sim.profile.mixed_step_s([(off, n) for _, off, n in pieces], b,
                                                        self.ctx_base + b * self.step))
        if b:
            self._advance(1)
        for r, _, n in pieces:
            r.done += n
            if r.done == r.todo:
                self.prefill_queue.remove(r)
                self._end_prefill(r)

    def _advance(self, done: int):
        """`done` decode steps have run: retire the requests whose last token they made."""
        self.step += done
        while self.running and self.running[0][0] <= self.step:
            _, _, r = heapq.heappop(self.running)
            self.ctx_base -= r.ctx0
            self.sim.finish(r, transfer=not self.does_prefill)

    def _admit(self):
        cap = self.sim.cluster.max_decode_batch
        while self.decode_queue and len(self.running) < cap:
            r = self.decode_queue.popleft()
            r.decode_started, r.dw = self.sim.env.now, self.index
            ctx = r.spec.prompt_tokens + 1
            self.ctx_base += ctx - self.step
            r.ctx0 = ctx - self.step
            heapq.heappush(self.running, (self.step + r.spec.output_tokens - 1, r.spec.request_id, r))

    def _decode(self):
        """Run decode steps up to the next completion, or to the step boundary after an interrupt."""
        env, prof = self.sim.env, self.sim.profile
        b = len(self.running)
        k = self.running[0][0] - self.step
        a = prof.decode_step_s(b, self.ctx_base + b * self.step)    # first step's time
        c = prof.decode_per_ctx_token_s * b / 2                      # T(j) = a j + c j (j - 1)
        total = a * k + c * k * (k - 1)
        start = env.now
        self.interruptible = True
        try:
            yield env.timeout(total)
            self.interruptible = False
            done = k
        except simpy.Interrupt:
            elapsed = env.now - start
            done = _steps_until(elapsed, a, c, k)
            yield env.timeout(max(0.0, a * done + c * done * (done - 1) - elapsed))
        self._advance(done)


def _steps_until(elapsed: float, a: float, c: float, k: int) -> int:
    """Smallest j in [0, k] with a j + c j (j - 1) >= elapsed (the boundary after an interrupt)."""
    if elapsed <= 0:
        return 0
    if c == 0:
        j = math.ceil(elapsed / a - 1e-12)
    else:   # c j^2 + (a - c) j - elapsed = 0
        j = math.ceil((-(a - c) + math.sqrt((a - c) ** 2 + 4 * c * elapsed)) / (2 * c) - 1e-9)
    while j > 0 and a * (j - 1) + c * (j - 1) * (j - 2) >= elapsed:
        j -= 1
    while a * j + c * j * (j - 1) < elapsed and j < k:
        j += 1
    return max(0, min(j, k))


class _Sim:
    def __init__(self, profile: Profile, cluster: Cluster):
        self.env, self.profile, self.cluster = simpy.Environment(), profile, cluster
        self.link_bytes_per_s = cluster.link_bytes_per_s or profile.link_bytes_per_s
        self.link_latency_s = profile.link_latency_s if cluster.link_latency_s is None else cluster.link_latency_s
        if cluster.mode == "disagg":
            self.prefill = [Worker(self, i, True, False) for i in range(cluster.num_prefill_workers)]
            self.decode = [Worker(self, i, False, True) for i in range(cluster.num_decode_workers)]
        else:
            self.prefill = self.decode = [Worker(self, i, True, True) for i in range(cluster.num_workers)]
        self.link_free_at = [0.0] * len(self.prefill)
        self.records: list[RequestRecord] = []
        self.cache = (PrefixCache(cluster.prefix_cache_blocks, cluster.prefix_block_tokens)
                      if cluster.prefix_cache_blocks else None)

    def cached_tokens(self, r: _Req) -> int:
        """Tokens of r's prompt the prefix cache already holds (0 without a cache or block ids)."""
        return self.cache.lookup(r.spec.prompt_tokens, r.spec.block_hashes) if self.cache else 0

    def remember(self, r: _Req):
        if self.cache is not None:
            self.cache.insert(r.spec.block_hashes)

    def arrive(self, r: _Req):
        w = min(self.prefill, key=Worker.load)     # least loaded; ties go to the lowest index
        w.prefill_queue.append(r)
        w.notify()

    def send(self, src: Worker, r: _Req):
        """Ship the KV cache over src's link, one transfer at a time; latency is pipelined."""
        now = self.env.now
        kv = r.spec.prompt_tokens * self.profile.kv_bytes_per_token
        start = max(now, self.link_free_at[src.index])
        wire_s = kv / self.link_bytes_per_s
        self.link_free_at[src.index] = start + wire_s
        r.transfer_started, r.transfer_ended = start, start + wire_s + self.link_latency_s
        ev = self.env.timeout(r.transfer_ended - now)
        ev.callbacks.append(lambda _e, r=r: self.deliver(r))

    def deliver(self, r: _Req):
        w = min(self.decode, key=Worker.load)
        w.decode_queue.append(r)
        w.notify()

    def finish(self, r: _Req, transfer: bool):
        s, now = r.spec, self.env.now
        first = r.first_token
        t_start = first if r.transfer_started is None else r.transfer_started
        t_end = first if r.transfer_ended is None else r.transfer_ended
        d_start = first if r.decode_started is None else r.decode_started
        if transfer and self.cluster.ttft_includes_transfer:
            first = t_end
        n, arrived = s.output_tokens, s.arrived_at_s
        self.records.append(RequestRecord(
            s.request_id, s.prompt_tokens, n,
            s.prompt_tokens * self.profile.kv_bytes_per_token if transfer else 0, r.pw, r.dw,
            arrived, r.prefill_started, first, t_start, t_end, d_start, now,
            first - arrived, (now - first) / (n - 1) if n > 1 else 0.0,
            now - arrived, r.prefill_ended - r.prefill_started, t_end - t_start, r.cached))

    def arrivals(self, specs):
        """One process feeds the requests in at their arrival times (keeps the event heap small)."""
        env = self.env
        for spec in specs:
            if spec.arrived_at_s > env.now:
                yield env.timeout(spec.arrived_at_s - env.now)
            self.arrive(_Req(spec))


def simulate(profile: Profile, cluster: Cluster = Cluster(),
             requests: Traffic | tuple[RequestSpec, ...] | list[RequestSpec] = Traffic()) -> tuple[RequestRecord, ...]:
    """Serve `requests` (a Traffic or a trace) on `cluster`; records sorted by request id."""
    specs = requests.requests() if isinstance(requests, Traffic) else tuple(requests)
    sim = _Sim(profile, cluster)
    sim.env.process(sim.arrivals(sorted(specs, key=lambda r: r.arrived_at_s)))
    sim.env.run()
    if len(sim.records) != len(specs):
        raise RuntimeError(f"simulator lost requests: {len(sim.records)} of {len(specs)} finished")
    return tuple(sorted(sim.records, key=lambda r: r.request_id))
