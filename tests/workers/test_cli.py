"""`micheck run`: exit codes and one-line errors, never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def micheck(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "micheck.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


BAD = {
    "unknown estimator": ("estimator: {name: magic}\ndataset: {name: mnist}\n"
                          "tests: [{kind: baseline}]", "unknown estimator 'magic'"),
    "t outside 0..height": ("estimator: {name: smile}\ndataset: {name: mnist}\n"
                            "tests: [{kind: baseline, rows: [0, 29]}]", "outside 0..28"),
    "negative steps": ("estimator: {name: nwj, train: {steps: -5}}\ndataset: {name: gaussian}\n"
                       "tests: [{kind: ground_truth}]", "estimator.train.steps"),
    "tau < 0": ("estimator: {name: smile, params: {tau: -1}}\ndataset: {name: mnist}\n"
                "tests: [{kind: baseline}]", "tau must lie in"),
    "unknown data root": ("estimator: {name: smile}\n"
                          "dataset: {name: cifar10, data_root: nonexistent}\n"
                          "tests: [{kind: baseline, rows: [0]}]", "'nonexistent' is not configured"),
    "a server path": ("estimator: {name: smile}\n"
                      "dataset: {name: cifar10, data_dir: /etc}\n"
                      "tests: [{kind: baseline, rows: [0]}]", "data_dir is not accepted"),
    "not yaml": ("estimator: [unclosed", "not valid YAML"),
    "|rho| >= 1": ("estimator: {name: mige}\ndataset: {name: gaussian, dim: 5}\n"
                   "tests: [{kind: mi_gradient, rho: [0.5, 1.0]}]", "|rho| < 1"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_specs_exit_2_with_one_message(tmp_path, case):
    text, expected = BAD[case]
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    proc = micheck("run", str(spec))
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") <= 2


def test_reference_spec_parses_and_plans():
    from micheck.workers.selfconsistency import plan

    from micheck.spec import load_spec

    req = load_spec(ROOT / "examples" / "mnist.yaml")
    assert len(plan(req)) == 6 and req.seeds == [0, 1]


def test_run_writes_results_file(tmp_path):
    """A pass that holds on any CPU: MIGE's dI/drho trains nothing, and its ratio at
    rho = 0.5 (d = 2, 400 samples) is 0.95 +- 0.03 over seeds 0-11 (measured), so three
    seeds' simultaneous interval (~ +-0.08) lies far inside the band 1 +- 0.5."""
    spec = tmp_path / "g.json"
    spec.write_text(json.dumps({
        "estimator": {"name": "mige", "params": {"samples": 400}},
        "dataset": {"name": "gaussian", "dim": 2},
        "tests": [{"kind": "mi_gradient", "rho": [0.5], "tolerance": 0.5}],
        "seeds": [0, 1, 2], "max_seeds": 3}))
    out = tmp_path / "res" / "results.json"
    proc = micheck("run", str(spec), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mi_gradient" in proc.stdout and "verdict: PASS" in proc.stdout
    data = json.loads(out.read_text())
    assert {"test", "t", "seed", "mi_train", "mi_test", "curve", "converged"} <= set(
        data["estimates"][0])
    ratio = data["ratios"][0]
    assert {"value", "ci_low", "ci_high", "band_low", "band_high", "ci_level", "verdict"} <= set(ratio)
    assert len(data["estimates"]) == 3 and ratio["verdict"] == "pass"
    assert ratio["band_low"] <= ratio["ci_low"] <= ratio["ci_high"] <= ratio["band_high"]


def test_run_with_two_seeds_is_inconclusive_and_exits_4(tmp_path):
    """Two seeds can never decide (pass or fail needs three), whatever the critics learnt:
    too few seeds, or not converged, both inconclusive."""
    spec = tmp_path / "g.json"
    spec.write_text(json.dumps({
        "estimator": {"name": "infonce", "train": {"batch_size": 32, "steps": 100, "lr": 5e-4,
                                                   "eval_samples": 256}},
        "dataset": {"name": "gaussian", "dim": 2, "mi": 0.5},
        "tests": [{"kind": "ground_truth", "tolerance": 0.9}], "seeds": [0, 1],
        "max_seeds": 2}))
    proc = micheck("run", str(spec), "--quiet")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "verdict: INCONCLUSIVE" in proc.stdout
    assert "too_few_seeds" in proc.stdout or "not_converged" in proc.stdout
    assert micheck("run", str(spec), "--quiet", "--inconclusive", "fail").returncode == 1
