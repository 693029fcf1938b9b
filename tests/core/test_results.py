import json

import memlab as ml
from memlab.core import results


def test_round_trip_json_and_csv_keep_the_hardware_card(tiny, tmp_path):
    recs = [ml.generate(tiny, [1, 2, 3], max_new_tokens=4, stop_at_eos=False) for _ in range(2)]
    frame = results.to_frame(recs)
    assert list(frame["host"]) == [recs[0].hardware.host] * 2 and "ttft_s" in frame

    j = results.save(recs, tmp_path / "r.json")
    doc = json.loads(j.read_text())
    assert doc["hardware"]["cpu_model"] == recs[0].hardware.cpu_model
    back = results.load(j)
    assert back["ttft_s"].tolist() == frame["ttft_s"].tolist()
    assert back["hw_torch_version"][0] == recs[0].hardware.torch_version

    c = results.save(recs, tmp_path / "r.csv")
    back = results.load(c)
    assert back["tpot_s"].tolist() == frame["tpot_s"].tolist()
    assert back["hw_host"][0] == recs[0].hardware.host


def test_records_without_a_card_get_this_machines(tiny, tmp_path):
    doc = json.loads(results.save(tiny.result, tmp_path / "load.json").read_text())
    assert doc["records"][0]["strategy"] == "resident" and doc["hardware"]["host"]


def test_a_reply_with_carriage_returns_survives_the_csv_round_trip(tiny, tmp_path):
    import dataclasses
    r = ml.generate(tiny, [1, 2, 3], max_new_tokens=2, stop_at_eos=False)
    odd = dataclasses.replace(r, text="a\rb")  # random tiny weights can decode to a bare \r
    back = results.load(results.save([odd, r], tmp_path / "r.csv"))
    assert len(back) == 2 and back["text"][0] == odd.text and back["tpot_s"].tolist() == [odd.tpot_s, r.tpot_s]
