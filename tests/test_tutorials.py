"""The tutorials: Jupyter notebooks kept as jupytext percent-format .py files.

Every tutorial is executed as a notebook (jupytext + nbclient, the ``notebooks`` extra) with
``GALPPL_QUICK=1``. Together they take several minutes on two cores, so the default test run
skips that and ``.ci/run`` runs it as its own step with ``GALPPL_TUTORIALS=1``. The checks that
every tutorial is a well-formed notebook source, and is listed in the README, always run.
"""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
RUN_ENV = "GALPPL_TUTORIALS"


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 5, [p.name for p in TUTORIALS]


@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_is_a_percent_notebook_listed_in_the_readme(script):
    text = script.read_text()
    assert text.startswith("# ---\n# jupyter:\n"), "jupytext header missing"
    assert "format_name: percent" in text.split("# ---", 2)[1]
    assert re.search(rf"^# %% \[markdown\]\n# # {script.name[:2]} ", text, re.MULTILINE), "no '# NN Title' markdown cell"
    assert 'os.environ.get("GALPPL_QUICK") == "1"' in text, "no quick setting"
    compile(text, str(script), "exec")
    assert f"tutorials/{script.name}" in (ROOT / "README.md").read_text()


@pytest.mark.skipif(os.environ.get(RUN_ENV) != "1", reason=f"notebooks run by .ci/run ({RUN_ENV}=1), several minutes")
@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_runs_as_a_notebook(script, tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext", reason="pip install 'galppl[notebooks]'")
    nbclient = pytest.importorskip("nbclient", reason="pip install 'galppl[notebooks]'")
    monkeypatch.setenv("GALPPL_QUICK", "1")  # the kernel inherits this process's environment
    notebook = jupytext.read(script)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    jupytext.write(notebook, tmp_path / f"{script.stem}.ipynb")
    assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
