"""What a newcomer meets first: the README's script form, `python -m plait`, the demo, the version."""

import re
import subprocess
import sys
from pathlib import Path

import plait

ROOT = Path(__file__).resolve().parent.parent


def python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_the_readme_script_form_runs_as_a_script(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    pipeline, script = blocks[0], blocks[1]
    assert "await run(" in pipeline and "run_sync(" in script
    # The notebook line is what a script cannot run; the script form replaces it.
    kept = [line for line in pipeline.splitlines() if "await " not in line]
    code = "\n".join([*kept, script])
    path = tmp_path / "quickstart.py"
    path.write_text(code)
    done = python(str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[") and "Summary:" in done.stdout


def test_python_dash_m_plait_lists_the_entry_points():
    done = python("-m", "plait")
    assert done.returncode == 0
    assert done.stdout.startswith(f"plait {plait.__version__}:")
    for entry in ("python -m plait.demo", "python -m plait.simulator", "jupyter lab notebooks/"):
        assert entry in done.stdout
    wrong = python("-m", "plait", "serve")
    assert wrong.returncode == 2 and "plait takes no command 'serve'" in wrong.stdout


def test_the_version_is_the_installed_one():
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", plait.__version__)


def test_demo_help_describes_instead_of_running():
    done = python("-m", "plait.demo", "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: python -m plait.demo")
    assert "traced graph:" not in done.stdout and "Done:" not in done.stdout


def test_the_demo_ends_with_what_it_did_and_what_to_open_next():
    done = python("-m", "plait.demo")
    assert done.returncode == 0, done.stderr
    tail = done.stdout.splitlines()[-6:]
    assert tail[0].startswith("Done: traced a 3-node pipeline and ran it 41 times")
    assert tail[1] == "Next:"
    assert "jupyter lab notebooks/01_quickstart.ipynb" in tail[2]
    assert "Key point: Quarterly revenue rose 12%" in done.stdout  # scripted, reads naturally
    assert "8-hex request digest" in done.stdout  # and the unscripted format is explained
