"""What one weight costs in a storage format, scales and zeros included (lab 04; `footprint`, `memlab fits`).

A format stores each matrix row by row. A row of K weights (K = in_features) is cut into groups of
G values along the row; each weight keeps a b-bit code and each group one scale (and, for the
asymmetric form, one zero or min):
    bits of a row    = K*b + (K/G) * (scale bits + zero bits)        (G = None: one group per row)
    bits per weight  = b + (scale bits + zero bits) / G
What a format leaves unquantized is part of it: the embedding and lm_head (tied or not) and the
1-D weights (norms, biases) are kept in a dtype of their own, or "kept" in the one the model was
loaded in (`kept_dtype`). Bytes of a whole model add this up tensor by tensor over the shapes
`footprint.weight_shapes` lists, so per-row and per-group overheads are exact.

The named formats (`FORMATS`), in the order `memlab fits` knows them:
  fp32, bf16, fp16  every tensor in that float dtype
  int8              memlab's Int8Linear: int8 codes, one bf16 scale per row (8 + 16/K bits)
  int4              memlab's Int4Linear: G=32, a bf16 scale and a bf16 zero per group (5 bits);
                    int8 and int4 swap the layer matrices only: embedding, lm_head and norms stay
                    in the dtype the model was loaded in (fp32 in lab 04, bf16 for a hub checkpoint)
  q8_0              GGUF: G=32, an fp16 scale per group (34 B per 32 weights: 8.5 bits)
  q4_1              GGUF: G=32, an fp16 scale and an fp16 min per group (20 B per 32: 5.0 bits)
  q4_0              GGUF: G=32, an fp16 scale per group (18 B per 32: 4.5 bits)
The GGUF formats are files as `llama-quantize --pure` writes them: every matrix, token embedding
and output included, in the format; 1-D tensors in F32. llama.cpp's default recipe keeps the
output matrix (or a tied embedding) at Q6_K, or Q8_0 where a row is not a multiple of 256 (the
bundled SmolLM2 Q4_1 file's token_embd is Q8_0): `dataclasses.replace(fmt, embedding="q8_0")`
models such a file. Q4_K_M is not modelled: it mixes Q4_K (super-blocks of 256, 4.5 bits) with Q6_K
in tensors chosen by layer index and architecture, and falls back to other types for rows that
are not a multiple of 256 (576 here), so no single bits-per-weight describes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from memlab.core.errors import InvalidArgumentError


@dataclass(frozen=True, slots=True)
class QuantFormat:
    name: str
    code_bits: int                 # bits of one stored weight value
    group_size: int | None = None  # weights sharing one scale along a row; None: one group per row
    scale_bits: int = 0            # per group (0: a float format, no scale)
    zero_bits: int = 0             # per group (0: symmetric, no zero/min)
    embedding: str = "kept"        # format of the embedding and lm_head; "kept": the loaded dtype
    vector: str = "kept"           # float format of 1-D weights (norms, biases); "kept": the loaded dtype
    description: str = ""          # what it stores, in a line

    def row_bits(self, row_len: int) -> int:
        """Bits of one stored row of `row_len` weights: K*b + groups * (scale + zero bits)."""
        per_group = self.scale_bits + self.zero_bits
        if not per_group:
            return row_len * self.code_bits
        G = self.group_size or row_len
        if row_len % G:
            raise InvalidArgumentError(f"{self.name} stores groups of {G} weights along a row; a row of "
                                       f"{row_len} (in_features) is not a multiple of {G}: choose another format")
        return row_len * self.code_bits + row_len // G * per_group

    def bits_per_weight(self, row_len: int) -> float:
        """b + (scale bits + zero bits) / G, for a matrix whose rows hold `row_len` weights."""
        return self.row_bits(row_len) / row_len

    def matrix_bytes(self, rows: int, row_len: int) -> int:
        """Bytes of a `rows` x `row_len` matrix (out_features x in_features) stored in this format."""
        return -(-rows * self.row_bits(row_len) // 8)


FORMATS: dict[str, QuantFormat] = {f.name: f for f in [
    QuantFormat("fp32", 32, embedding="fp32", vector="fp32", description="every weight a 32-bit float"),
    QuantFormat("bf16", 16, embedding="bf16", vector="bf16", description="every weight a bfloat16"),
    QuantFormat("fp16", 16, embedding="fp16", vector="fp16", description="every weight a float16"),
    QuantFormat("int8", 8, None, 16, 0, description="memlab's Int8Linear: int8 codes, a bf16 scale per row; "
                "embedding, lm_head and norms kept as loaded"),
    QuantFormat("int4", 4, 32, 16, 16, description="memlab's Int4Linear: 4-bit codes, a bf16 scale and a bf16 "
                "zero per 32 weights (5 bits); embedding, lm_head and norms kept as loaded"),
    QuantFormat("q8_0", 8, 32, 16, 0, embedding="q8_0", vector="fp32", description="GGUF Q8_0: int8 codes, an "
                "fp16 scale per 32 weights (8.5 bits); every matrix (llama-quantize --pure), norms F32"),
    QuantFormat("q4_1", 4, 32, 16, 16, embedding="q4_1", vector="fp32", description="GGUF Q4_1: 4-bit codes, an "
                "fp16 scale and an fp16 min per 32 weights (5 bits); every matrix (--pure), norms F32"),
    QuantFormat("q4_0", 4, 32, 16, 0, embedding="q4_0", vector="fp32", description="GGUF Q4_0: 4-bit codes, an "
                "fp16 scale per 32 weights (4.5 bits); every matrix (--pure), norms F32"),
]}


def get(fmt: str | QuantFormat) -> QuantFormat:
    """A format from its name (`FORMATS`), or the QuantFormat given; one clear error otherwise."""
    if isinstance(fmt, QuantFormat):
        return fmt
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"unknown dtype {fmt!r}: the formats memlab counts are {', '.join(FORMATS)}")
    return FORMATS[fmt]


def lookup(fmt) -> QuantFormat | None:
    """The format `fmt` names (or is); None for anything else (a torch dtype, a number of bytes per weight)."""
    return fmt if isinstance(fmt, QuantFormat) else FORMATS.get(fmt) if isinstance(fmt, str) else None


def is_quantized(fmt: str | QuantFormat) -> bool:
    """True for a format with scales (int8, int4, GGUF's), False for a float one (fp32, bf16, fp16)."""
    f = get(fmt)
    return bool(f.scale_bits or f.zero_bits)


def shapes_bytes(shapes, fmt: str | QuantFormat, kept_dtype: str = "bf16", active: bool = False) -> dict[str, int]:
    """Bytes per part ("matrices", "embedding", "vectors") of the tensors `shapes` lists, stored in `fmt`.

    `shapes`: (part, rows, row_len, count, active) tuples, part one of "matrix", "embedding", "lm_head",
    "vector" (`footprint.weight_shapes`); `active=True` counts the tensors one decode step reads.
    `kept_dtype`: what the format leaves "kept" is in this float dtype (the one the model was loaded in).
    """
    f = get(fmt)
    kept = get(kept_dtype)
    if is_quantized(kept):
        raise InvalidArgumentError(f"kept_dtype={kept_dtype!r}: a model is loaded in a float dtype (fp32, bf16, fp16)")
    embedding = kept if f.embedding == "kept" else get(f.embedding)
    vector = kept if f.vector == "kept" else get(f.vector)
    out = {"matrices": 0, "embedding": 0, "vectors": 0}
    for part, rows, row_len, count, num_active in shapes:
        n = num_active if active else count
        if part == "vector":
            out["vectors"] += n * vector.matrix_bytes(rows, row_len)
        elif part in ("embedding", "lm_head"):
            out["embedding"] += n * embedding.matrix_bytes(rows, row_len)
        else:
            out["matrices"] += n * f.matrix_bytes(rows, row_len)
    return out
