"""data/hardware.csv: complete, in the stated units, dense (not sparse) figures."""


import pandas as pd
import pytest

from memlab.core.paths import data_path

TABLE = data_path("hardware.csv")
COMPUTE = {"cpu", "gpu", "soc"}


@pytest.fixture(scope="module")
def table():
    return pd.read_csv(TABLE)


def test_enough_devices_of_every_kind(table):
    assert len(table) >= 25
    assert table["name"].is_unique
    assert {"cpu", "gpu", "soc", "fpga", "link", "storage"} <= set(table["kind"])
    for must in ("V100", "A100", "H100", "H200", "B200", "MI210", "MI300X", "U55C", "Apple M", "NVMe", "PCIe", "NVLink"):
        assert table["name"].str.contains(must, regex=False).any(), must


def test_every_row_has_a_source_year_and_bandwidth(table):
    assert table["source_url"].str.match(r"^https://\S+$").all()
    assert table["year"].between(2005, 2026).all()
    assert (table["bandwidth_gb_per_s"] > 0).all()
    mem = table[table["kind"].isin(COMPUTE | {"fpga"})]
    assert (mem["capacity_gb"] > 0).all()


def test_compute_devices_have_plausible_dense_flops(table):
    dev = table[table["kind"].isin(COMPUTE)]
    assert dev["fp32_tflop_per_s"].notna().all()
    assert dev["fp32_tflop_per_s"].between(0.05, 200).all()  # TFLOP/s, not GFLOP/s or FLOP/s
    half = dev[["fp16_tflop_per_s", "bf16_tflop_per_s"]]
    # dense 16-bit tops out near 2.3 PFLOP/s (B200); a sparse figure would be ~4.5 PFLOP/s
    assert (half.max(axis=1, skipna=True).dropna() <= 2500).all()
    assert (half.max(axis=1).dropna() >= dev.loc[half.max(axis=1).notna(), "fp32_tflop_per_s"]).all()
    # bandwidth in GB/s: between a DDR3 server and a B200
    assert dev["bandwidth_gb_per_s"].between(20, 10000).all()


def test_sparse_figures_are_not_reported_as_dense(table):
    known_dense = {"NVIDIA H100 SXM5": 989.4, "NVIDIA A100 SXM4 80GB": 312.0, "AMD Instinct MI300X": 1307.4}
    for name, tflops in known_dense.items():
        assert table.set_index("name").loc[name, "bf16_tflop_per_s"] == tflops
