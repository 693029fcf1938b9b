import pytest
import torch

from memlab import hardware
from memlab.errors import DeviceUnavailableError, MemlabError


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
