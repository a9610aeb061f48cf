"""The recipes study (lowprec recipes): every configuration trains and writes its row, the curves and
the plot; configuration names holding commas are picked from a comma-separated list; bad settings
are refused."""

import csv

import pytest

torch = pytest.importorskip("torch")

from lowprec.sims import output, training_recipes  # noqa: E402


def test_every_configuration_runs_and_writes_its_row(tmp_path):
    configs = "fp32,te_delayed,fp8, h100_fp8 unit, fp32 every 128 (bit-accurate)"
    args = ["--out", str(tmp_path), "--steps", "2", "--eval-every", "1", "--width", "16", "--quiet", "--configs", configs]
    assert training_recipes.main(args) == 0
    with open(tmp_path / "recipes.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["configuration"] for r in rows] == ["fp32", "te_delayed", "fp8, h100_fp8 unit, fp32 every 128 (bit-accurate)"]
    assert rows[0]["vs_fp32"] == "1.0"
    for r in rows:
        assert 0 < float(r["val_loss"]) < 10 and 0.5 < float(r["vs_fp32"]) < 2
    with open(tmp_path / "recipes-curves.csv") as f:
        curves = list(csv.DictReader(f))
    assert len(curves) == 2 * len(rows)
    assert (tmp_path / "recipes.png").stat().st_size > 0


def test_the_emulated_configurations_change_the_arithmetic():
    """Each configuration but fp32 gives another loss than fp32 after one step (its formats act). The
    unrounded losses: nvfp4_training rounds gradients stochastically from fresh entropy (the recipe
    sets no seed), so its 4-decimal row can meet fp32's by chance."""
    configs = list(training_recipes.CONFIGS)
    _, curves = training_recipes.run(configs, steps=1, eval_every=1, width=16, context=8, batch=4, val_batches=2)
    final = {c["configuration"]: c["val_loss"] for c in curves}  # each configuration's last evaluation
    assert list(final) == configs
    assert all(final[name] != final["fp32"] for name in configs[1:]), final


def test_names_with_commas_and_bad_settings(capsys):
    known = ["fp32", "fp8, fp16 accumulator", "a, b, c"]
    assert output.parse_choices("a, b, c,fp32, fp8, fp16 accumulator, nope", known) == (
        ["a, b, c", "fp32", "fp8, fp16 accumulator"], ["nope"])
    with pytest.raises(SystemExit):
        training_recipes.main(["--configs", "fp32,fp64"])
    assert "unknown --configs ['fp64']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        training_recipes.main(["--width", "6"])
    assert "--width must be a multiple of 4" in capsys.readouterr().err
