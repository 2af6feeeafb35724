"""A define-by-run batch with a checkpoint, run as a subprocess so a test can SIGKILL it.

usage: python _dynamic_crash_worker.py URL CHECKPOINT N_ITEMS
Prints "done <n ok>" when the whole batch finished.
"""

import asyncio
import sys

from plait import LLMInference, Module, ResourceConfig, run_batch


class Flow(Module):
    """Classify, then three parts chosen by the label, then a join: five calls per item."""

    def __init__(self):
        super().__init__()
        self.classify = LLMInference("fast", system_prompt="Classify.")
        self.part = LLMInference("fast", system_prompt="Write one part.")
        self.join = LLMInference("fast", system_prompt="Join the parts.")

    async def forward(self, text):
        label = await self.classify(text)
        parts = [self.part(f"{text} / {label[:10]} / part {i}") for i in range(3)]
        return self.join("\n".join(parts))


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
        Flow(),
        [f"document {i}" for i in range(n)],
        resources=resources,
        checkpoint=checkpoint,
        progress=False,
    )
    print("done", sum(item.ok for item in items), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
