import pytest
import torch

from memlab.core import hardware
from memlab.core.errors import DeviceUnavailableError, MemlabError


def test_card_describes_this_machine(tmp_path):
    hw = hardware.card(tmp_path)
    assert hw.num_threads >= 1 and hw.ram_total_bytes > hw.ram_available_bytes > 0
    assert hw.torch_version == torch.__version__
    assert hw.cache_dir == str(tmp_path) and hw.cache_disk_free_bytes > 0
    assert "ram_total" in str(hw)


def test_cuda_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        hardware.resolve_device("cuda")
    assert issubclass(DeviceUnavailableError, MemlabError)


def test_unknown_device_is_refused():
    with pytest.raises(DeviceUnavailableError):
        hardware.resolve_device("mps")


def test_cpu_features_read_x86_and_arm_flags(monkeypatch):
    from memlab.core import hardware
    from memlab.quantization import quantize
    x86 = "processor : 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile\n"
    assert hardware.cpu_features(x86) == ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")
    arm = "processor : 0\nFeatures\t: fp asimd asimdhp bf16 i8mm\n"
    assert hardware.cpu_features(arm) == ("asimd", "asimdhp", "bf16", "i8mm")
    avx2_only = hardware.cpu_features("flags : fpu sse2 avx2 fma\n")
    monkeypatch.setattr(hardware, "cpu_features", lambda cpuinfo=None: avx2_only)
    assert "emulated" in quantize.emulation_note("bf16") and quantize.emulation_note("fp32") == ""
    monkeypatch.setattr(hardware, "cpu_features", lambda cpuinfo=None: ("avx2", "avx512_bf16"))
    assert quantize.emulation_note("bf16") == "" and "emulated" in quantize.emulation_note("fp16")


def test_last_level_cache_is_the_biggest_level(tmp_path):
    for i, (level, size) in enumerate([(1, "48K"), (2, "2048K"), (3, "491520K")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "level").write_text(f"{level}\n")
        (d / "size").write_text(f"{size}\n")
    from memlab.core import hardware
    assert hardware.last_level_cache_bytes(tmp_path) == 480 * 2**20
    assert hardware.last_level_cache_bytes(tmp_path / "missing") == 0


def test_auto_resolves_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(hardware, "has_cuda", lambda: False)
    monkeypatch.setattr(hardware, "has_mps", lambda: False)
    assert hardware.resolve_device("auto") == torch.device("cpu")
    assert hardware.resolve_device(" AUTO ") == torch.device("cpu")
    monkeypatch.setattr(hardware, "has_mps", lambda: True)
    assert hardware.resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(hardware, "has_cuda", lambda: True)
    assert hardware.resolve_device("auto") == torch.device("cuda")


def test_auto_is_what_torch_sees_here():
    want = "cuda" if torch.cuda.is_available() else "mps" if hardware.has_mps() else "cpu"
    assert hardware.resolve_device("auto").type == want


def test_nonsense_device_is_a_clear_error():
    with pytest.raises(DeviceUnavailableError, match="not a device"):
        hardware.resolve_device("gpu0")


def test_cpu_or_cuda_keeps_code_without_mps_kernels_on_the_cpu(monkeypatch):
    import torch
    assert hardware.cpu_or_cuda("cpu") == "cpu"
    monkeypatch.setattr(hardware, "resolve_device", lambda d: torch.device("mps"))
    assert hardware.cpu_or_cuda("auto") == "cpu"
    monkeypatch.setattr(hardware, "resolve_device", lambda d: torch.device("cuda", 1))
    assert hardware.cpu_or_cuda("auto") == "cuda"
