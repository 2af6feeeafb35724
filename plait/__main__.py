"""``python -m plait``: a short map of the entry points."""

from __future__ import annotations

import sys

import plait

HELP = f"""\
plait {plait.__version__}: a PyTorch-style framework for compound AI systems.

Try it (no API key, no network; everything runs on the built-in simulator):
  python -m plait.demo                  the quickstart pipeline: trace, run, batch
  jupyter lab notebooks/                the tutorials; in a notebook, %load_ext plait_jupyter
                                        and a %%plait cell draws each run live
  python -m plait.simulator --port 8000 an OpenAI-compatible simulator server (--help)

In Python:
  from plait import Module, LLMInference, Parameter, ResourceConfig, run, run_sync
  result = run_sync(pipeline, "text", resources=ResourceConfig.simulated("fast"))

Read: README.md, design_docs/README.md, help(plait).
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(HELP, end="")
    if args and args[0] not in ("-h", "--help", "help"):
        print(f"\nplait takes no command {args[0]!r}; use one of the entry points above.")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
