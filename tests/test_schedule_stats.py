"""Format schedules by epoch (phases, bit ramps, overlaps refused) and per-layer tensor statistics."""

import csv

import pytest

torch = pytest.importorskip("torch")

import lowprec  # noqa: E402
from lowprec import nn as lnn  # noqa: E402
from lowprec.nn.schedule import ramp_bits  # noqa: E402


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def test_phases_and_ramps_follow_the_epochs(tmp_path):
    path = tmp_path / "schedule.toml"
    path.write_text('[[phase]]\nstart = 0\nend = 2\nweight = "fp16"\ninput = "fp16"\n\n'
                    '[[phase]]\nstart = 2\nend = 6\nlayers = "0"\nweight_bits = [8, 4]\ninput = "fp8_e4m3fn"\n')
    sched = lnn.Schedule(path)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    params = [id(p) for p in model.parameters()]
    seen = {}
    for epoch in range(7):
        plan = sched.apply(model, epoch)
        seen[epoch] = {n: (getattr(s.get("weight"), "bits", s.get("weight")), s.get("input")) for n, s in plan.items()}
        model(torch.randn(3, 4)).sum().backward()
        opt.step()
        assert [id(p) for p in model.parameters()] == params  # the optimizer's parameters, still
    assert seen[0] == seen[1] == {"0": ("fp16", "fp16"), "2": ("fp16", "fp16")}
    assert [seen[e]["0"][0] for e in range(2, 6)] == [8, 7, 5, 4]  # 8, 6.67, 5.33, 4 rounded
    assert all("2" not in seen[e] for e in range(2, 6)) and seen[6] == {}
    assert type(model[0]) is torch.nn.Linear  # epoch 6: no phase, plain again
    assert ramp_bits({"start": 0, "end": 1, "weight_bits": [8, 4]}, 0) == 8


@pytest.mark.parametrize("phases, match", [
    ([{"start": 0, "end": 3, "weight": "fp16"}, {"start": 2, "end": 4, "weight": "bf16"}],
     r"phases 0 and 1 overlap: epochs \[0, 3\) and \[2, 4\) both set \['weight'\]"),
    ([{"start": 3, "end": 3, "weight": "fp16"}], r"phase 0: end \(3\) must come after start \(3\)"),
    ([{"start": 0, "end": 2, "weight_bits": [8, 1]}], "weight_bits must be an int or"),
    ([{"start": 0, "end": 2, "wieght": "fp16"}], r"phase 0: unknown keys \['wieght'\]"),
    ([], "non-empty list 'phase'"),
])
def test_bad_schedules_name_the_phases(phases, match):
    with pytest.raises(ValueError, match=match):
        lnn.Schedule({"phase": phases})


def test_phases_on_other_layers_or_settings_may_overlap():
    sched = lnn.Schedule({"phase": [{"start": 0, "end": 4, "layers": "0", "weight": "fp16"},
                                    {"start": 1, "end": 3, "layers": "2", "weight": "bf16"},
                                    {"start": 1, "end": 3, "input": "fp16"}]})
    assert sched.settings("0", 2) == {"weight": "fp16", "input": "fp16"}


def test_tensor_statistics_by_hand(tmp_path):
    model = _model()
    lnn.swap(model, {"0": {"input": "fp8_e4m3fn"}})
    stats = lnn.TensorStats(model, csv=tmp_path / "stats.csv")
    x = torch.tensor([[0.0, 1000.0, 1e-5, -2.0], [0.5, 0.0, -600.0, 3.0]])
    with pytest.warns(RuntimeWarning, match="2 of 8 values became NaN or Inf"):  # the layer says so too
        model(x)
    rows = stats.step(1)
    row = next(r for r in rows if r["layer"] == "0" and r["tensor"] == "input")
    assert (row["min"], row["max"], row["zeros"]) == (-600.0, 1000.0, 0.25)
    assert row["mean"] == pytest.approx(float(x.mean())) and row["std"] == pytest.approx(float(x.std()))
    assert row["saturated"] == 2 / 8  # 1000 and -600 beyond e4m3fn's 448
    assert row["flushed"] == 1 / 8  # 1e-5 below e4m3fn's smallest subnormal (2**-9) / 2
    plain = next(r for r in rows if r["layer"] == "2" and r["tensor"] == "input")
    assert plain["saturated"] != plain["saturated"]  # NaN: no format there
    model(x)
    stats.step(2)
    stats.close()
    with open(tmp_path / "stats.csv") as f:
        written = list(csv.DictReader(f))
    assert len(written) == 2 * 2 * 3 and {r["step"] for r in written} == {"1", "2"}
    with pytest.raises(ValueError, match="tensors must be among"):
        lnn.TensorStats(model, tensors=("grad",))
    assert lowprec.quantize(torch.tensor([1e-5]), "fp8_e4m3fn").item() == 0.0
