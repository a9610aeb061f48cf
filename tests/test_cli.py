"""The lowprec command end to end on tiny settings: the files it writes, resume, dask, bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lowprec import cli


def run(*args):
    return subprocess.run([sys.executable, "-m", "lowprec", *args], capture_output=True, text=True, timeout=600)


def test_formats_and_quantize(tmp_path):
    assert "fp8_e4m3fn" in run("formats").stdout
    assert "0x7e" in run("formats", "fp8_e4m3fn").stdout
    x = np.linspace(-500, 500, 101).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = run("quantize", str(tmp_path / "x.npy"), str(tmp_path / "q.npy"), "--format", "fp8_e4m3fn", "--json")
    stats = json.loads(r.stdout)
    q = np.load(tmp_path / "q.npy")
    assert np.array_equal(q, __import__("lowprec").quantize(x, "fp8_e4m3fn"), equal_nan=True)
    assert stats["saturated"] == pytest.approx(np.mean(np.abs(q) >= 448))
    for args, message in ((("quantize", str(tmp_path / "nope.npy"), "o.npy", "--format", "fp16"), "does not exist"),
                          (("quantize", str(tmp_path / "x.npy"), "o.npy", "--format", "fp9"), "unknown format"),
                          (("bogus",), "invalid choice")):
        r = run(*args)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    r = run("quantize", str(tmp_path / "bad.npy"), "o.npy", "--format", "fp16")
    assert r.returncode == 2 and "bad.npy" in r.stderr


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("grid")
    # spaces around names, an earlier label (an alias) and a shell-friendly name
    r = run("accuracy", "--specs", "fp32, int8 PTQ,ternary-qat", "--epochs", "2", "--out", str(out), "--quiet", "--json")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_accuracy_writes_every_cell_table_and_plots(grid):
    out, results = grid
    assert [c["spec"] for c in results] == ["fp32", "int8-ptq", "ternary-qat"]
    header = (out / "accuracy.csv").read_text().splitlines()[0]
    assert header == "spec,bits,accuracy,final_loss,energy_pj,compute_pj,seconds,epochs,seed"
    assert len((out / "accuracy.csv").read_text().splitlines()) == 4
    import matplotlib.image

    for png in ("accuracy_vs_bits.png", "energy_vs_accuracy.png", "loss_curves.png"):
        assert matplotlib.image.imread(out / png).shape[2] in (3, 4)
    assert sorted(p.name for p in (out / "cells").iterdir()) == ["fp32.json", "int8-ptq.json", "ternary-qat.json"]
    assert results[0]["energy_pj"] > results[2]["energy_pj"]


def test_resume_after_a_killed_run_gives_the_same_table(grid, tmp_path):
    out, results = grid
    import shutil

    shutil.copytree(out / "cells", tmp_path / "cells")
    (tmp_path / "cells" / "int8-ptq.json").unlink()  # as if killed before that cell finished
    (tmp_path / "cells" / ".int8-ptq.json.123.tmp").write_text("partial")  # a temp file never counts
    r = run("accuracy", "--specs", "fp32,int8-ptq,ternary-qat", "--epochs", "2", "--out", str(tmp_path),
            "--resume", "--quiet", "--json")
    again = json.loads(r.stdout)
    strip = lambda rs: [{k: v for k, v in c.items() if k != "seconds"} for c in rs]  # noqa: E731
    assert strip(again) == strip(results)
    assert again[0]["seconds"] == results[0]["seconds"]  # fp32 was not rerun


def test_dask_local_cluster_equals_the_local_pool(grid, tmp_path):
    pytest.importorskip("distributed")
    out, results = grid
    r = run("accuracy", "--specs", "fp32,ternary-qat", "--epochs", "2", "--out", str(tmp_path), "--scheduler", "local",
            "--quiet", "--json")
    assert r.returncode == 0, r.stderr
    strip = lambda rs: [{k: v for k, v in c.items() if k != "seconds"} for c in rs]  # noqa: E731
    assert strip(json.loads(r.stdout)) == strip([results[0], results[2]])


def test_bad_accuracy_and_energy_input(tmp_path):
    r = run("accuracy", "--specs", "fp33", "--out", str(tmp_path))
    assert r.returncode == 2 and "unknown spec" in r.stderr and "fp32" in r.stderr
    r = run("energy", "--specs", "nope")
    assert r.returncode == 2 and "known:" in r.stderr
    r = run("accuracy", "--epochs", "0", "--out", str(tmp_path / "never"))
    assert r.returncode == 2 and "epochs must be an int >= 1" in r.stderr and not (tmp_path / "never").exists()


def test_energy_json_and_formats_lists_every_family():
    r = run("energy", "--specs", "fp32,fp16", "--json")
    assert r.returncode == 0, r.stderr
    costs = json.loads(r.stdout)
    assert set(costs) == {"fp32", "fp16"} and costs["fp32"]["layers"]
    r = run("formats")
    assert "mxfp8_e4m3" in r.stdout and "nvfp4" in r.stdout and "LUTFormat" in r.stdout


def test_help_gives_every_option_a_text_without_markup():
    for cmd in ([], ["accuracy"], ["demo"], ["energy"], ["quantize"], ["formats"], ["swamping"]):
        r = run(*cmd, "--help")
        assert r.returncode == 0 and "``" not in r.stdout, cmd
        lines = r.stdout.splitlines()
        options = [i for i, line in enumerate(lines) if line.startswith("  -")]
        for i in options:  # every option has a help text: on its line, or on the next one
            assert len(lines[i].split("  ")) > 2 or lines[i + 1].startswith(" " * 8), (cmd, lines[i])
    assert "usage: lowprec swamping" in run("swamping", "--help").stdout
    assert "(default: 15)" in run("accuracy", "--help").stdout


def test_quantize_counts_overflow(tmp_path):
    np.save(tmp_path / "x.npy", np.array([1e30, 1.0], np.float32))
    r = run("quantize", str(tmp_path / "x.npy"), str(tmp_path / "q.npy"), "--format", "fp8_e4m3fn", "--json")
    stats = json.loads(r.stdout)
    assert stats["overflow"] == 0.5 and stats["nonfinite"] == 0.5
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x09\x03")
    r = run("accuracy", "--specs", "fp32", "--mnist", str(tmp_path), "--out", str(tmp_path / "o"), "--epochs", "1")
    assert r.returncode == 2 and "train-images-idx3-ubyte" in r.stderr


def test_idx_reader_round_trip(tmp_path):
    from lowprec.sims.accuracy import load_idx

    data = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = b"\x00\x00\x08\x03" + b"".join(int(d).to_bytes(4, "big") for d in data.shape) + data.tobytes()
    (tmp_path / "a.idx").write_bytes(raw)
    assert np.array_equal(load_idx(tmp_path / "a.idx"), data)
    (tmp_path / "b.idx").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match="data bytes"):
        load_idx(tmp_path / "b.idx")


def test_energy_table_lists_every_preset():
    pytest.importorskip("torch")
    out = run("energy").stdout
    from lowprec.sims.accuracy import PRESETS

    assert all(name in out for name in PRESETS)
    assert cli.main(["energy", "--specs", "fp32"]) == 0


def test_ctrl_c_prints_one_line_and_stops_the_workers(tmp_path):
    pytest.importorskip("torch")
    import os
    import signal
    import time

    cmd = [sys.executable, "-m", "lowprec", "accuracy", "--specs", "fp32", "--epochs", "1000", "--out",
           str(tmp_path), "--quiet"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(6)  # the pool is up and training
    os.killpg(p.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130
    assert "Traceback" not in err and "interrupted; rerun with --resume" in err, err
