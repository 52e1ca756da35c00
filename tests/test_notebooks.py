"""The example notebooks (examples/*.ipynb): committed without outputs, their full settings, and each run top to
bottom in quick mode (SEGFIT_QUICK=1) by a Jupyter kernel, as a reader would run it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = ("emps.ipynb", "vineyard.ipynb")


def _parameters(name: str) -> str:
    """The source of the notebook's parameter cell (tagged ``parameters``)."""
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{name}: one cell tagged 'parameters' expected, found {len(cells)}"
    return cells[0].source


def _settings(name: str, monkeypatch, quick: bool) -> dict:
    """The parameter cell's values as Jupyter would set them, started from examples/."""
    monkeypatch.chdir(EXAMPLES)
    for var in ("SEGFIT_EMPS", "SEGFIT_WORK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SEGFIT_QUICK", "1" if quick else "0")
    namespace: dict = {}
    exec(_parameters(name), namespace)  # the cell only reads the environment
    return namespace


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{name}: cell {i} has outputs; strip them: jupyter nbconvert --clear-output --inplace examples/{name}")
    kinds = [c.cell_type for c in nb.cells]
    assert kinds.count("markdown") >= kinds.count("code") / 2, f"{name}: prose between the cells"


def test_full_settings_are_the_lesson(monkeypatch):
    full = _settings("emps.ipynb", monkeypatch, quick=False)
    assert not full["QUICK"] and full["SUBSET"] is None
    assert (full["SIZE"], full["VAL"], full["EPOCHS"], full["BATCH"]) == (128, 100, 50, 32)  # the notebook's
    assert full["BUDGET"] == {"time": "10m"}
    assert full["WORK"] == Path.home() / "segfit-examples" / "emps"
    # Run from examples/ in a checkout, the default finds EMPS where it lies beside the repository.
    assert full["EMPS"].resolve() == EXAMPLES.parents[1] / "shared" / "data" / "emps"
    quick = _settings("emps.ipynb", monkeypatch, quick=True)
    assert quick["QUICK"] and quick["VAL"] < 100 and quick["SUBSET"]
    vine = _settings("vineyard.ipynb", monkeypatch, quick=False)
    assert not vine["QUICK"] and vine["BUDGET"] == {"time": "5m"}


@pytest.fixture
def kernel(tmp_path, monkeypatch) -> str:
    """A kernel spec for this very interpreter, found first (JUPYTER_PATH): the notebooks run with the
    segfit under test whatever other ``python3`` kernels the machine has."""
    spec = tmp_path / "jupyter" / "kernels" / "segfit-tests"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "segfit tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "segfit-tests"


def _execute(name: str, kernel: str, tmp_path: Path, monkeypatch, **env: str):
    """Run every cell of ``examples/NAME`` in quick mode, in ``tmp_path``; fail on the first cell error."""
    from nbclient import NotebookClient

    monkeypatch.setenv("SEGFIT_QUICK", "1")
    monkeypatch.setenv("SEGFIT_WORK", str(tmp_path / "work"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = sorted(p.name for p in EXAMPLES.iterdir())
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    client = NotebookClient(nb, kernel_name=kernel, timeout=300, resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / name)  # the executed notebook, to read when a cell fails
    assert sorted(p.name for p in EXAMPLES.iterdir()) == before, "the notebook wrote into examples/"
    assert (tmp_path / "work").is_dir()
    return nb


@pytest.mark.slow
@pytest.mark.emps
def test_emps_notebook_runs(emps_dir, kernel, tmp_path, monkeypatch):
    _execute("emps.ipynb", kernel, tmp_path, monkeypatch, SEGFIT_EMPS=str(emps_dir))
    runs = tmp_path / "work" / "emps" / "runs"
    assert (runs / "notebook" / "eval_test" / "grid.png").is_file()
    assert (runs / "planned" / "report.html").is_file()
    assert (tmp_path / "work" / "emps" / "particles" / "objects.csv").is_file()


@pytest.mark.slow
def test_vineyard_notebook_runs(kernel, tmp_path, monkeypatch):
    nb = _execute("vineyard.ipynb", kernel, tmp_path, monkeypatch)
    # A figure drawn after segfit has drawn its own still shows (segfit keeps Jupyter's inline backend).
    [scatter] = [c for c in nb.cells if c.cell_type == "code" and "predicted leaf-area index" in c.source]
    assert any("image/png" in o.get("data", {}) for o in scatter.outputs)
    work = tmp_path / "work" / "vineyard"
    assert "coverage_pred_leaves" in (work / "runs" / "vine" / "eval_test" / "test_metrics.csv").read_text()
    assert (work / "predictions" / "coverage.csv").is_file()
