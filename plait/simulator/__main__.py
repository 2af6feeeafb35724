"""``python -m plait.simulator``: serve the simulator on loopback until SIGTERM/SIGINT.

Prints exactly one line, ``plait simulator listening on http://HOST:PORT``,
once the port is bound (``--port 0`` picks a free one). Flags override the
matching keys of ``--config`` (a TOML or JSON file of `SimulatorSettings`
fields, rules and faults included).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys

from plait.errors import ConfigError
from plait.simulator.server import SimulatorServer
from plait.simulator.settings import SimulatorSettings

_FLAGS = ("latency", "jitter", "ttft", "tokens_per_second", "max_rps", "seed")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m plait.simulator", description="Serve plait's simulated LLM over HTTP."
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--config", help="a .toml or .json file of simulator settings")
    parser.add_argument("--latency", type=float, help="seconds before each response starts")
    parser.add_argument("--jitter", type=float, help="extra random latency, up to this many s")
    parser.add_argument("--ttft", type=float, help="seconds to the first streamed chunk")
    parser.add_argument("--tokens-per-second", type=float, help="output pace (default instant)")
    parser.add_argument("--max-rps", type=float, help="answer requests beyond this rate with 429")
    parser.add_argument("--seed", type=int, help="seed of the fault and jitter draws")
    return parser


async def _serve(settings: SimulatorSettings, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with SimulatorServer(settings, host=host, port=port) as server:
        sys.stdout.write(f"plait simulator listening on {server.url}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = SimulatorSettings.from_file(args.config) if args.config else SimulatorSettings()
        overrides = {k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None}
        settings = dataclasses.replace(settings, **overrides)
    except ConfigError as exc:
        sys.stderr.write(f"plait simulator: {exc}\n")
        return 2
    asyncio.run(_serve(settings, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
