"""An evaluation into a run store, run as a subprocess (a test may SIGKILL it mid-run).

usage: python _eval_worker.py URL STORE N_EXAMPLES
Prints "done <score>" when the evaluation finished.
"""

import sys

from plait import ResourceConfig, evaluate_sync
from plait.optimization.demo import DIGITS_ONLY, START_INSTRUCTIONS, OrderNumberExtractor


def check(output, target):
    return output == target, f"expected {target!r}, got {output!r}"


def main(url: str, store: str, n: int) -> None:
    resources = ResourceConfig(
        {"task": {"provider": "openai", "base_url": url + "/v1", "model": "sim-task"}}
    )
    examples = [(f"Order {1000 + i} is late.", str(1000 + i)) for i in range(n)]
    module = OrderNumberExtractor(f"{START_INSTRUCTIONS} {DIGITS_ONLY}")
    result = evaluate_sync(
        module, examples, check, resources=resources, store=store, max_concurrent=2, progress=False
    )
    print("done", result.score, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
