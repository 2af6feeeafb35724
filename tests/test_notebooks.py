"""The tutorial notebooks run top to bottom on the simulator, and their committed outputs are clean.

Each notebook is executed with nbclient on a fresh kernel, in a temporary
directory, with no API keys in the kernel's environment: a cell error fails
the test. The committed copies must hold outputs (a newcomer on GitHub sees
results) but no errors, no warnings, no secrets and no absolute paths.

Refresh the committed outputs after changing a notebook or what it shows::

    python tests/test_notebooks.py                 # every notebook
    python tests/test_notebooks.py 03_scale        # the ones whose name starts so
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = (
    "01_quickstart",
    "02_graphs_and_helpers",
    "03_scale_and_reliability",
    "04_profiling",
    "05_optimization",
    "06_control_flow",
    "07_evaluate_and_compare",
    "08_scale_out_on_ray",
)
CELL_TIMEOUT = 120  # seconds per cell; each notebook takes well under a minute in total
KEY_VARIABLES = re.compile(r"(API_KEY|_TOKEN|_SECRET)$")
ABSOLUTE_PATH = re.compile(r"(?<![\w.])(/root|/home|/tmp|/Users|/private/var|[A-Z]:\\\\Users)\b")
SECRET = re.compile(
    r"\bsk-[A-Za-z0-9_-]{8,}|\bBearer [A-Za-z0-9._-]{8,}|\bx-api-key\b|\bAKIA[0-9A-Z]{16}\b",
    re.IGNORECASE,
)
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PLOTLY = "application/vnd.plotly.v1+json"
CHROMIUM = "/usr/bin/chromium"
RENDER_PLOT = """async (figure) => {
  const div = document.createElement("div");
  document.body.appendChild(div);
  const width = figure.layout.width || 900, height = figure.layout.height || 450;
  await Plotly.newPlot(div, figure.data, {...figure.layout, width, height}, {staticPlot: true});
  const url = await Plotly.toImage(div, {format: "png", width, height});
  div.remove();
  return url;
}"""


def kernel_env() -> dict[str, str]:
    """The test's environment without credentials, importing plait from this checkout."""
    env = {k: v for k, v in os.environ.items() if not KEY_VARIABLES.search(k)}
    # tests/_ray_env keeps the Ray processes a notebook starts quick to start (see its README stub).
    paths = [str(ROOT), str(ROOT / "tests" / "_ray_env"), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return env


def execute(name: str, workdir: Path) -> nbformat.NotebookNode:
    """Run ``notebooks/<name>.ipynb`` from a copy in ``workdir`` (its cwd); raises on a cell error."""
    source = NOTEBOOKS / f"{name}.ipynb"
    copy = workdir / source.name
    shutil.copyfile(source, copy)
    notebook = nbformat.read(copy, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    notebook.metadata.pop("widgets", None)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        record_timing=False,
    )
    client.execute(env=kernel_env(), cwd=str(workdir))
    return notebook


def outputs(notebook: nbformat.NotebookNode) -> list[tuple[int, dict]]:
    """(cell index, output) for every output of every code cell."""
    return [
        (index, output)
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]


def problems(notebook: nbformat.NotebookNode) -> list[str]:
    """What must not be in a notebook's outputs: errors, stderr, secrets, absolute paths."""
    found = []
    for index, output in outputs(notebook):
        if output["output_type"] == "error":
            found.append(f"cell {index}: error {output['ename']}: {output['evalue']}")
        elif output["output_type"] == "stream" and output["name"] == "stderr":
            found.append(f"cell {index}: stderr {output['text'][:300]!r}")
    # Everything but the PNGs (base64 could spell "/tmp" by chance).
    shown = [
        {**output, "data": {k: v for k, v in output.get("data", {}).items() if k != "image/png"}}
        for _, output in outputs(notebook)
    ]
    text = json.dumps(shown) + json.dumps(notebook.metadata.get("widgets", {}))
    for pattern, what in ((SECRET, "a secret"), (ABSOLUTE_PATH, "an absolute path")):
        for hit in pattern.finditer(text):
            context = text[max(0, hit.start() - 60) : hit.end() + 60]
            found.append(f"{what} in the outputs: {context!r}")
    return found


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.timeout(300)
def test_notebook_runs_top_to_bottom_on_the_simulator(name: str, tmp_path: Path) -> None:
    notebook = execute(name, tmp_path)

    assert problems(notebook) == []
    # Notebooks write their files into tempfile directories, never next to themselves.
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.ipynb"]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_holds_clean_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]

    nbformat.validate(notebook)
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert problems(notebook) == []


def test_the_notebooks_directory_holds_exactly_the_tutorials_and_its_readme_lists_them() -> None:
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")

    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == list(NAMES)
    assert [name for name in NAMES if f"{name}.ipynb" not in readme] == []


def tidy(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Strip what differs between machines and runs: timings, versions, random ids."""
    notebook.metadata = nbformat.NotebookNode(
        {
            "kernelspec": {
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
                "name": "python3",
            },
            "language_info": {"name": "python"},
            **({"widgets": notebook.metadata["widgets"]} if "widgets" in notebook.metadata else {}),
        }
    )
    for index, cell in enumerate(notebook.cells, 1):
        cell.id = f"cell-{index:02d}"
        cell.metadata.pop("execution", None)
    # Widget model ids are random uuids: number them in order instead.
    text = nbformat.writes(notebook)
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for number, model_id in enumerate(state, 1):
        text = text.replace(model_id, f"{number:032x}")
    return nbformat.reads(text, as_version=4)


def add_plot_images(notebook: nbformat.NotebookNode) -> int:
    """Give every plotly output a PNG as well: GitHub runs no JavaScript, so it shows the PNG.

    JupyterLab still draws the interactive figure (its plotly renderer ranks first). Needs
    Playwright and Chromium (the browser tests' setup); without them the notebook keeps only
    the interactive figures.
    """
    figures = [output for _, output in outputs(notebook) if PLOTLY in output.get("data", {})]
    if not figures:
        return 0
    try:
        import plotly  # optional extras: plait[jupyter] and plait[dev]
        from playwright.sync_api import sync_playwright
    except ImportError:
        return 0
    script = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    executable = CHROMIUM if Path(CHROMIUM).exists() else None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page()
        page.add_script_tag(path=str(script))
        for output in figures:
            url = page.evaluate(RENDER_PLOT, output["data"][PLOTLY])
            output["data"]["image/png"] = url.split(",", 1)[1]
        browser.close()
    return len(figures)


def update(prefixes: list[str]) -> None:
    """Execute the chosen notebooks and write them back with their outputs, tidied."""
    chosen = [n for n in NAMES if not prefixes or any(n.startswith(p) for p in prefixes)]
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix="plait-notebook-") as workdir:
            start = time.monotonic()
            notebook = tidy(execute(name, Path(workdir)))
            seconds = time.monotonic() - start
        images = add_plot_images(notebook)
        nbformat.write(notebook, NOTEBOOKS / f"{name}.ipynb")
        found = problems(notebook)
        status = "ok" if not found else "PROBLEMS:\n  " + "\n  ".join(found)
        sys.stdout.write(f"{name}: {seconds:.1f} s, {images} plot images, {status}\n")


if __name__ == "__main__":
    update(sys.argv[1:])
