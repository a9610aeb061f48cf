"""Mixed precision on the digits CNN: sensitivity, the search (exhaustive and greedy), the Pareto
front, the TOML spec of the choice, budgets no assignment meets."""

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from lowprec import nn as lnn  # noqa: E402
from lowprec.sims import mixed  # noqa: E402


@pytest.fixture(scope="module")
def problem():
    return mixed.digits_problem(epochs=15, seed=0)


def test_the_choice_is_within_half_a_point_of_fp32_at_less_energy_than_uniform_int8(problem, tmp_path):
    assert mixed.main_mixed(["--out", str(tmp_path), "--quiet"]) == 0
    choice, rows, front = mixed.search(problem)
    fp32, int8 = mixed.uniform(problem, "fp32"), mixed.uniform(problem, "int8")
    assert choice["accuracy"] >= fp32["accuracy"] - 0.005
    assert choice["energy"] < int8["energy"]
    assert len(rows) == len(mixed.LADDER) ** len(problem.layers)
    assert choice["assignment"] in {r["assignment"] for r in front}  # the cheapest good one: nothing beats it
    for name in ("mixed.csv", "mixed-spec.toml", "mixed.png"):
        assert (tmp_path / name).stat().st_size > 0
    # the written spec swaps the choice back in: the same accuracy
    model = copy.deepcopy(problem.model)
    lnn.swap(model, str(tmp_path / "mixed-spec.toml"))
    with torch.no_grad():
        accuracy = float((model(problem.x).argmax(1) == problem.y).float().mean())
    assert accuracy == choice["accuracy"]


def test_pareto_front_by_hand():
    rows = [{"energy": 1, "accuracy": 0.5}, {"energy": 2, "accuracy": 0.4}, {"energy": 3, "accuracy": 0.9},
            {"energy": 3, "accuracy": 0.8}, {"energy": 4, "accuracy": 0.9}]
    assert [(r["energy"], r["accuracy"]) for r in mixed.pareto(rows, "energy")] == [(1, 0.5), (3, 0.9)]


def test_greedy_search_and_budgets(problem):
    base = mixed.uniform(problem, "fp32")
    choice, rows, _ = mixed.search(problem, exhaustive=1)  # greedy
    assert choice["accuracy"] >= base["accuracy"] - 0.005 and choice["energy"] < base["energy"]
    assert len(rows) < len(mixed.LADDER) ** len(problem.layers)
    size_choice, _, _ = mixed.search(problem, metric="size", budget=20_000)
    assert size_choice["size"] <= 20_000
    with pytest.raises(ValueError, match=r"no assignment meets energy <= 1 pJ; the closest: [\d.e+]+ pJ with \{'0': 'int4'"):
        mixed.search(problem, budget=1.0)
    with pytest.raises(ValueError, match="metric must be one of 'energy', 'size', 'latency'"):
        mixed.search(problem, metric="area")


def test_sensitivity_ranks_the_same_on_reruns(problem):
    first = mixed.sensitivity(problem)
    again = mixed.sensitivity(mixed.digits_problem(epochs=15, seed=0))
    assert [r["rank"] for r in first] == [r["rank"] for r in again]
    assert sorted(r["rank"] for r in first) == [1, 2, 3]
    hawq = mixed.sensitivity(problem, hessian=True, samples=4, seed=1)
    assert all(r["hawq"] > 0 for r in hawq)
    assert [r["rank"] for r in hawq] == [r["rank"] for r in mixed.sensitivity(problem, hessian=True, samples=4, seed=1)]
    order = sorted(hawq, key=lambda r: r["rank"])
    assert all(a["hawq"] >= b["hawq"] for a, b in zip(order, order[1:]))

