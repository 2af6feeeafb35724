"""A batch run with a checkpoint, run as a subprocess so a test can SIGKILL it mid-run.

usage: python _crash_worker.py URL CHECKPOINT N_ITEMS
Prints "done <n ok>" when the whole batch finished.
"""

import asyncio
import sys

from _models import Chain

from plait import ResourceConfig, run_batch


async def main(url: str, checkpoint: str, n: int) -> None:
    resources = ResourceConfig(
        {
            "fast": {
                "provider": "openai",
                "base_url": url + "/v1",
                "model": "sim",
                "max_concurrent": 4,
            }
        }
    )
    items = await run_batch(
        Chain(),
        [f"document {i}" for i in range(n)],
        resources=resources,
        checkpoint=checkpoint,
        progress=False,
    )
    print("done", sum(item.ok for item in items), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
