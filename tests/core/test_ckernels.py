"""memlab's C kernels: compiled here, each equal to the matmul it replaces."""

import pytest
import torch

from memlab.core import ckernels

pytestmark = pytest.mark.skipif(ckernels.reason() != "", reason=f"no C kernels here: {ckernels.reason()}")


def test_float_kernels_equal_the_matmul():
    torch.manual_seed(0)
    for k in (96, 100):  # a whole number of 32-float blocks, and a tail after them
        w, x = torch.randn(300, k), torch.randn(k)
        torch.testing.assert_close(ckernels.gemv(x, "f32", w, out_features=300)[0], w @ x, rtol=1e-4, atol=1e-4)
        wb = w.bfloat16()
        torch.testing.assert_close(ckernels.gemv(x, "bf16", wb, out_features=300)[0], wb.float() @ x, rtol=1e-4, atol=1e-4)


def test_the_read_kernel_reads_every_float_once():
    for n in (4096 * 3, 4096 * 5 + 7, 5):  # whole blocks, blocks and a tail, a tail only
        a = torch.arange(n, dtype=torch.float32) % 7
        assert ckernels.read_sum(a) == pytest.approx(float(a.double().sum()), rel=1e-6)
        assert ckernels.read_sum(a, threads=1) == pytest.approx(float(a.double().sum()), rel=1e-6)


def test_int8_and_int4_codes_equal_their_dequantized_matmul():
    torch.manual_seed(0)
    N, K = 200, 96  # K: three int4 groups, and an int8 tail past the 16-wide vector loop
    x = torch.randn(K)
    q8, s8 = torch.randint(-127, 128, (N, K), dtype=torch.int8), torch.rand(N).bfloat16()
    ref8 = (q8.float() * s8.float()[:, None]) @ x
    torch.testing.assert_close(ckernels.gemv(x, "q8", q8, s8, out_features=N)[0], ref8, rtol=1e-4, atol=1e-3)
    q4, sz = torch.randint(0, 16, (N, K)), torch.randn(N, K // 32, 2).bfloat16()
    s, z = (sz[..., i].float().repeat_interleave(32, 1) for i in (0, 1))
    got = ckernels.gemv(x, "q4", ckernels.pack_q4(q4), sz, out_features=N)[0]
    # with AVX2 the kernel rounds x to int8 per group of 32 (x ~ dx * xq, dx = max|x| / 127); the zero
    # point's term keeps the float sum of x. Emulated here; without AVX2 it computes in float.
    xg = x.view(-1, 32)
    m = xg.abs().amax(1, keepdim=True)
    xq = (torch.round(xg * (127 / m)) * (m / 127)).reshape(-1)  # as the C code rounds: x * (127 / max)
    emulated = (q4 * s) @ xq + (z - 8 * s) @ x
    exact = ((q4 - 8) * s + z) @ x
    assert torch.allclose(got, emulated, rtol=1e-3, atol=1e-2) or torch.allclose(got, exact, rtol=1e-3, atol=1e-2)
    assert (got - exact).norm() / exact.norm() < 0.03  # the int8 activation costs about 1 % here


def test_pack_q4_puts_code_j_low_and_j_plus_16_high():
    q = torch.arange(32).remainder(16).view(1, 32)  # codes 0..15, 0..15
    packed = ckernels.pack_q4(q)
    assert packed.shape == (1, 16)
    assert [int(b) & 15 for b in packed[0]] == list(range(16)) and [int(b) >> 4 for b in packed[0]] == list(range(16))


def test_the_library_is_built_once_per_machine():
    lib = ckernels.library()
    assert ckernels.library() is lib
    assert any(p.name.startswith("gemv-") for p in (ckernels.cache_dir_kernels()).iterdir())


def test_the_gemm_equals_the_matmul_for_a_few_rows():
    """Kernel 6 (each weight row read once for M rows) against torch, M = 1..9 (blocks of up to 6: 7 = 4 + 3,
    9 = 5 + 4), an odd N (the last weight row alone) and K with a tail past the 8-wide vectors."""
    torch.manual_seed(0)
    for m in range(1, 10):
        for k in (7, 45, 96):
            w, x = torch.randn(37, k), torch.randn(m, k)
            torch.testing.assert_close(ckernels.gemm(x, w), x @ w.T, rtol=1e-4, atol=1e-4)
            wb = w.bfloat16()
            torch.testing.assert_close(ckernels.gemm(x, wb, threads=1), x @ wb.float().T, rtol=1e-4, atol=1e-4)


def test_a_batch_of_matrices_runs_several_rows():
    """`Batch` (what `kernels.time_role` times for "c") on M rows: the last matrix's product, every row."""
    from memlab.core.held import Gemv
    torch.manual_seed(1)
    mats = [torch.randn(50, 64) for _ in range(3)]
    x = torch.randn(5, 64)
    torch.testing.assert_close(ckernels.Batch([Gemv(w, "c") for w in mats])(x), x @ mats[-1].T, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(Gemv(mats[0], "c")(x[None]), (x @ mats[0].T)[None], rtol=1e-4, atol=1e-4)
