"""The accumulation study (lowprec accumulation): a ResNet-18 in every configuration, CSV and plot
complete, CIFAR-10's binary batches read, bad settings refused."""

import csv

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lowprec.sims import accumulation  # noqa: E402

TINY = ["--width", "4", "--epochs", "1", "--eval", "24", "--finetune-steps", "1", "--train-limit", "64",
        "--device", "cpu", "--quiet"]


def test_every_configuration_runs_and_writes_its_row(tmp_path):
    assert accumulation.main(["--out", str(tmp_path)] + TINY) == 0
    with open(tmp_path / "accumulation.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["configuration"] for r in rows] == list(accumulation.CONFIGS)
    for r in rows:
        assert 0 <= float(r["accuracy"]) <= 1 and 0 <= float(r["accuracy_finetuned"]) <= 1
        assert r["test_images"] == "24" and r["width"] == "4"
    assert (tmp_path / "accumulation.png").stat().st_size > 0


def test_the_mac_configurations_swap_in_bit_accurate_layers():
    from lowprec import nn as lnn
    from lowprec.sims.resnet import resnet18

    model = resnet18(10, 4, seed=0)
    lnn.swap(model, accumulation.spec_of(accumulation.CONFIGS["h100_fp8 unit, fp32 promotion every 128"]))
    convs = [m for m in model.modules() if type(m).__name__ == "QConv2d"]
    assert len(convs) == 20 and all(m.q_mode == "mac" and m.q_mac.unit.name == "h100_fp8" for m in convs)
    model(torch.randn(2, 3, 32, 32)).sum().backward()  # forward and backward on the unit
    assert convs[0].q_mac.counts["calls"] == 2  # forward and dW (the image needs no gradient)
    assert convs[1].q_mac.counts["calls"] == 3  # the forward GEMM and the two of the backward


def test_cifar10_binary_batches(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in (("data_batch_1.bin", 6), ("data_batch_2.bin", 4), ("test_batch.bin", 5)):
        records = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
        records[:, 0] = rng.integers(0, 10, n)
        records.tofile(tmp_path / name)
    xtr, ytr, xte, yte = accumulation.load(str(tmp_path), 0)
    assert xtr.shape == (10, 3, 32, 32) and xte.shape == (5, 3, 32, 32) and ytr.dtype == np.int64
    assert np.allclose(xtr.mean(axis=(0, 2, 3)), 0, atol=1e-5)  # standardised by the training set


def test_bad_settings_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        accumulation.main(["--out", str(tmp_path), "--configs", "fp64"])
    assert "unknown --configs ['fp64']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        accumulation.main(["--out", str(tmp_path), "--epochs", "0"])
    assert "--epochs must be >= 1" in capsys.readouterr().err
    assert accumulation.main(["--out", str(tmp_path), "--data", str(tmp_path / "missing")] + TINY) == 2
    assert "--data must be a folder" in capsys.readouterr().err
    assert not (tmp_path / "accumulation.csv").exists()  # complete or absent
