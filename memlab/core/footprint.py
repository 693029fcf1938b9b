"""What a model costs in bytes, from its config alone (labs 01, 04, 07): pure arithmetic.

Shape letters: L layers, d hidden size, f MLP (intermediate) size, H query heads, K KV heads,
D head dim, V vocab. For a Llama-family decoder:
    attention  = d*H*D (q) + 2*d*K*D (k, v) + H*D*d (o)
    mlp        = 3*d*f (gate, up, down)
    per layer  = attention + mlp + 2*d (two RMSNorm weights)
    total      = L*per_layer + V*d (embedding) + d (final norm) + [V*d if lm_head is not tied]
KV cache per token = 2 (k and v) * L * K * D * bytes per element (MLA and sliding windows: below).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memlab.core import models, quantformat, shapetrue
from memlab.core.dtypes import dtype_bytes
from memlab.core.errors import InvalidArgumentError, UnknownModelError
from memlab.core.paths import data_path

if TYPE_CHECKING:  # annotations only: arithmetic on a config needs no torch (`memlab fits` imports none)
    import torch


def config_value(config: Any, key: str, default=None):
    return config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)


def head_dim(config: Any) -> int:
    """D = hidden / heads unless the config states it."""
    return config_value(config, "head_dim") or config_value(config, "hidden_size") // config_value(config, "num_attention_heads")


def num_params(config: Any) -> int:
    """Parameter count of a dense Llama-family decoder from its config (formula in the module doc)."""
    d, f, L, V = (config_value(config, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size"))
    H = config_value(config, "num_attention_heads")
    K = config_value(config, "num_key_value_heads") or H
    D = head_dim(config)
    attention = d * H * D + 2 * d * K * D + H * D * d
    mlp = 3 * d * f
    per_layer = attention + mlp + 2 * d
    total = L * per_layer + V * d + d
    if not config_value(config, "tie_word_embeddings", False):
        total += V * d
    return total


def weights_bytes(config: Any, dtype: str | quantformat.QuantFormat | float | torch.dtype = "fp32", kept_dtype: str = "bf16") -> int:
    """Bytes of all weights in `dtype`: a format of `quantformat.FORMATS` (fp32, bf16, int8, int4, GGUF's q4_0...) tensor
    by tensor (`weights_bytes_by_part`: codes, scales, zeros, and what int8/int4 leave unquantized, embedding, lm_head
    and norms, in `kept_dtype`); a torch dtype or a number of bytes per weight as num_params * bytes."""
    if quantformat.lookup(dtype):
        return sum(weights_bytes_by_part(config, dtype, kept_dtype).values())
    return int(num_params(config) * dtype_bytes(dtype))


# --- MoE/MLA-aware counts, the KV formula, activations, famous configs, what fits where --------
# Extra shape letters: E routed experts, k experts per token, S shared experts, g MoE expert
# MLP size, r_q / r_kv the MLA low-rank sizes, W a sliding-attention window.
#   MoE layer = router d*E + (E + S) * 3*d*g;  active per token: d*E + (k + S) * 3*d*g
#   MLA attention = d*r_q + r_q*H*(D_nope+D_rope) + d*(r_kv+D_rope) + r_kv*H*(D_nope+D_v) + H*D_v*d
#   MLA KV cache per token = L * (r_kv + D_rope) * bytes (one latent serves K and V)

def _experts(config: Any) -> tuple[int, int, int]:
    """(E routed, k per token, S shared); (0, 0, 0) for a dense model."""
    E = config_value(config, "num_local_experts") or config_value(config, "n_routed_experts") or 0
    return E, (config_value(config, "num_experts_per_tok") or 0) if E else 0, config_value(config, "n_shared_experts") or 0


def weight_shapes(config: Any) -> list[tuple[str, int, int, int, int]]:
    """Every weight tensor, MoE and MLA aware: (part, rows, row_len, count, active) for `count` tensors of
    rows x row_len (out_features x in_features: quantization groups run along a row; a vector, norm or
    bias, is one row), `active` of them read by one decode step (k + S of E + S experts; not an untied
    input embedding). part: "matrix", "embedding", "lm_head" or "vector". `param_counts` sums this list."""
    d, f, L, V = (config_value(config, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size"))
    H, bias, (E, k, S) = config_value(config, "num_attention_heads"), config_value(config, "expert_bias"), _experts(config)
    out: dict[tuple[str, int, int], list[int]] = {}

    def add(part, rows, row_len, count=1, active=None):
        c = out.setdefault((part, rows, row_len), [0, 0])
        c[0], c[1] = c[0] + count, c[1] + (count if active is None else active)
    for layer in range(L):
        if config_value(config, "kv_lora_rank"):                    # DeepSeek's multi-head latent attention
            r_q, r_kv = config_value(config, "q_lora_rank"), config_value(config, "kv_lora_rank")
            nope, rope, dv = (config_value(config, k) for k in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"))
            if r_q:                                                  # q_a and its norm, then q_b (or q)
                add("matrix", r_q, d), add("vector", 1, r_q)
            add("matrix", H * (nope + rope), r_q or d), add("matrix", r_kv + rope, d), add("vector", 1, r_kv)
            add("matrix", H * (nope + dv), r_kv), add("matrix", d, H * dv)
        else:
            K, D = config_value(config, "num_key_value_heads") or H, head_dim(config)
            add("matrix", H * D, d), add("matrix", K * D, d, 2), add("matrix", d, H * D)
            if config_value(config, "attention_bias"):
                add("vector", 1, H * D), add("vector", 1, K * D, 2), add("vector", 1, d)
        add("vector", 1, d, 2)                                      # two RMSNorm weights
        if E and layer >= (config_value(config, "first_k_dense_replace") or 0):
            g = config_value(config, "moe_intermediate_size") or f
            add("matrix", E, d), add("matrix", g, d, 2 * (E + S), 2 * (k + S)), add("matrix", d, g, E + S, k + S)
            if bias:                                                  # router, then each expert's
                add("vector", 1, E), add("vector", 1, g, 2 * (E + S), 2 * (k + S)), add("vector", 1, d, E + S, k + S)
        else:
            add("matrix", f, d, 2), add("matrix", d, f)
    tied = config_value(config, "tie_word_embeddings", False)
    add("embedding", V, d, 1, 1 if tied else 0), add("lm_head", V, d, 0 if tied else 1)  # tied: read as lm_head
    add("vector", 1, d)                                             # the final norm
    return [(part, rows, row_len, c, a) for (part, rows, row_len), (c, a) in out.items() if c]


def param_counts(config: Any) -> tuple[int, int]:
    """(total, active per token) parameters, MoE and MLA aware: sums over `weight_shapes`. active = what
    one decode step reads: attention, router, the k routed + S shared experts, lm_head; not the input
    embedding, of which a token reads one row."""
    shapes = weight_shapes(config)
    return sum(r * n * c for _, r, n, c, _ in shapes), sum(r * n * a for _, r, n, _, a in shapes)


def weights_bytes_by_part(config: Any, fmt: str = "int4", kept_dtype: str = "bf16", active: bool = False) -> dict[str, int]:
    """Bytes of the weights stored in format `fmt`, per part ("matrices", "embedding", "vectors"), tensor
    by tensor over `weight_shapes` (`quantformat.shapes_bytes`); `active=True`: those one decode step reads."""
    return quantformat.shapes_bytes(weight_shapes(config), fmt, kept_dtype, active)


def streamed_bytes(config: Any, dtype: str | float | torch.dtype = "fp32", kept_dtype: str = "bf16") -> int:
    """Bytes of weights one batch-1 decode step reads: active parameters (`param_counts`) x bytes per parameter,
    every weight but an untied input embedding (a token reads one row); a format is counted as `weights_bytes` does."""
    if quantformat.lookup(dtype):
        return sum(weights_bytes_by_part(config, dtype, kept_dtype, active=True).values())
    return int(param_counts(config)[1] * dtype_bytes(dtype))


def kv_bytes_per_token(config: Any, dtype: str | float | torch.dtype = "fp32") -> int:
    """KV bytes one token adds over all layers: 2*L*K*D*bytes (GQA/MQA aware), L*(r_kv + D_rope)*bytes for MLA."""
    L = config_value(config, "num_hidden_layers")
    if config_value(config, "kv_lora_rank"):
        per_layer = config_value(config, "kv_lora_rank") + config_value(config, "qk_rope_head_dim")
    else:
        per_layer = 2 * (config_value(config, "num_key_value_heads") or config_value(config, "num_attention_heads")) * head_dim(config)
    return int(L * per_layer * dtype_bytes(dtype))


def kv_cache_bytes(config: Any, num_tokens: int, batch_size: int = 1,
                   dtype: str | float | torch.dtype = "fp32") -> int:
    """KV cache of `batch_size` sequences of `num_tokens` tokens each: the one KV formula.

    kv_bytes_per_token * tokens * batch, except that a sliding-attention layer (config
    `layer_types` + `sliding_window` W) keeps at most W tokens.
    """
    per_token = kv_bytes_per_token(config, dtype)
    types, W = config_value(config, "layer_types"), config_value(config, "sliding_window")
    if not (types and W):
        return per_token * int(num_tokens) * int(batch_size)
    tokens = sum(min(num_tokens, W) if t == "sliding_attention" else num_tokens for t in types)
    return per_token // len(types) * int(tokens) * int(batch_size)


def activation_bytes(config: Any, num_tokens: int, batch_size: int = 1,
                     dtype: str | float | torch.dtype = "fp32", attention: str = "sdpa") -> int:
    """Peak live activations of one forward (inference, no autograd), a model of the working set:

    B*T * (2d residual+normed + (H+2K)*D q/k/v + 2*f_eff gate/up) * bytes  +  B*V*4 (fp32 logits of
    the last position), with f_eff = k*g for a MoE layer. attention="sdpa" (transformers' default,
    and flash attention) never materialises the scores; attention="eager" adds them, B*H*T*T fp32.
    """
    if attention not in ("sdpa", "eager"):
        raise InvalidArgumentError(f"attention must be 'sdpa' or 'eager', not {attention!r}")
    d, H = config_value(config, "hidden_size"), config_value(config, "num_attention_heads")
    K, D = config_value(config, "num_key_value_heads") or H, head_dim(config)
    E, k, _ = _experts(config)
    f_eff = k * (config_value(config, "moe_intermediate_size") or config_value(config, "intermediate_size")) if E \
        else config_value(config, "intermediate_size")
    per_token = 2 * d + (H + 2 * K) * D + 2 * f_eff
    scores = batch_size * H * num_tokens ** 2 * 4 if attention == "eager" else 0
    return int(batch_size * num_tokens * per_token * dtype_bytes(dtype)
               + batch_size * config_value(config, "vocab_size") * 4 + scores)


def attention_kind(config: Any) -> str:
    """'eager' when the config asks for eager attention (scores materialised), else 'sdpa'."""
    impl = config_value(config, "_attn_implementation") or config_value(config, "attn_implementation")
    return "eager" if impl == "eager" else "sdpa"


def famous_configs(path: str | Path | None = None) -> dict[str, dict]:
    """The shipped configs of famous models (data/model_configs.json), keyed by short name."""
    data = json.loads(Path(path or data_path("model_configs.json")).read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


CONFIG_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


def read_config_json(path: Path) -> dict:
    """A model's config.json as a dict, refused in one line when it is not one (binary, not JSON,
    or without the sizes the formulas above read: `CONFIG_KEYS`)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InvalidArgumentError(f"{path} is not text: give a model's config.json (or its folder)") from None
    except json.JSONDecodeError as e:
        raise InvalidArgumentError(f"{path} is not JSON ({e.msg}, line {e.lineno} column {e.colno}): "
                                   "give a model's config.json (or its folder)") from None
    missing = [k for k in CONFIG_KEYS if not isinstance(config, dict) or k not in config]
    if missing:
        raise InvalidArgumentError(f"{path} has no {', '.join(missing)}: not a decoder's config.json "
                                   "(memlab's formulas read these sizes)")
    return config


def resolve_config(model: Any) -> Any:
    """A config from a famous or shape:NAME name, a config.json path, a checkpoint folder, a catalog name, a config."""
    if not isinstance(model, (str, Path)):
        return model
    famous = famous_configs()
    if shapetrue.is_shape_true(model):  # a shape-true model has its published config
        return shapetrue.published(model)
    if str(model).lower() in famous:
        return famous[str(model).lower()]
    p = Path(model).expanduser()
    if p.is_file():
        return read_config_json(p)
    if (p / "config.json").is_file():
        return read_config_json(p / "config.json")
    if model in models.CATALOG:
        return read_config_json(models.prepare(model) / "config.json")
    raise UnknownModelError(f"No config for {model!r}: use one of {', '.join(famous)}, a catalog model, "
                            "a config.json file or a checkpoint folder.")
