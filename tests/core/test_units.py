from memlab.core import units


def test_fmt_bytes_uses_binary_units():
    assert units.fmt_bytes(538090408) == "513.2 MiB"
    assert units.fmt_bytes(512) == "512 B"
    assert units.fmt_bytes(3 * units.GiB) == "3.0 GiB"


def test_fmt_rate_and_flops_use_decimal_units():
    assert units.fmt_rate(34.2e9) == "34.2 GB/s"
    assert units.fmt_flops(1.72e11) == "172.0 GFLOP/s"


def test_fmt_time_picks_a_readable_unit():
    assert units.fmt_time(0.0123) == "12.3 ms"
    assert units.fmt_time(1.2) == "1.20 s"
    assert units.fmt_time(850e-6) == "850 us"


def test_a_missing_duration_reads_as_missing_not_as_nanoseconds():
    assert units.fmt_time(float("nan")) == "nan s" and units.fmt_time(float("inf")) == "inf s"
