"""PooledTransport over loopback HTTP: never more connections than allowed, reused, and recovering."""

import asyncio

import httpx
import pytest
from _sim_support import chat_body, sim_server

from plait.clients._pool import PooledTransport


def _client(server, transport, **options):
    return httpx.AsyncClient(base_url=server.url + "/v1", transport=transport, **options)


async def _post(client, text):
    response = await client.post("/chat/completions", json=chat_body(text))
    response.raise_for_status()
    return response.json()["choices"][0]["message"]["content"]


def test_a_burst_wider_than_the_pool_opens_only_max_connections_and_reuses_them():
    async def scenario():
        async with sim_server(latency=0.01) as server:
            transport = PooledTransport(max_connections=4)
            async with _client(server, transport) as client:
                answers = await asyncio.gather(*(_post(client, f"q{i}") for i in range(40)))
                state = (transport.open_connections, transport.free_connections)
                # A second burst reuses the same four sockets.
                await asyncio.gather(*(_post(client, f"r{i}") for i in range(40)))
            return answers, state, server.connections_opened, server.model.stats.peak_in_flight

    answers, state, opened, peak = asyncio.run(scenario())
    assert len(set(answers)) == 40
    assert state == (4, 4)
    assert opened == 4
    assert peak == 4


def test_connections_the_server_drops_are_replaced():
    fault = {"kind": "connection_reset", "rate": 1.0, "attempts": "first"}

    async def scenario():
        async with sim_server(faults=[fault]) as server:
            transport = PooledTransport(max_connections=2)
            async with _client(server, transport) as client:
                with pytest.raises(httpx.TransportError):
                    await _post(client, "dropped")
                after_drop = transport.open_connections
                answer = await _post(client, "dropped")  # the second sighting is answered
            return after_drop, answer, server.connections_opened

    after_drop, answer, opened = asyncio.run(scenario())
    assert after_drop == 0
    assert answer
    assert opened == 2


def test_a_response_closed_before_its_end_gives_back_a_slot_not_a_broken_socket():
    async def scenario():
        async with sim_server(tokens_per_second=200) as server:
            transport = PooledTransport(max_connections=1)
            async with _client(server, transport) as client:
                body = chat_body("stream this reply please", stream=True)
                async with client.stream("POST", "/chat/completions", json=body) as response:
                    async for _ in response.aiter_lines():
                        break  # walk away mid-stream
                open_after = transport.open_connections
                answer = await _post(client, "next")
            return open_after, answer

    open_after, answer = asyncio.run(scenario())
    assert open_after == 0  # the half-read connection was closed, not reused
    assert answer


def test_waiting_for_a_connection_honours_the_pool_timeout():
    async def scenario():
        async with sim_server(latency=0.5) as server:
            transport = PooledTransport(max_connections=1)
            timeout = httpx.Timeout(5.0, pool=0.05)
            async with _client(server, transport, timeout=timeout) as client:
                slow = asyncio.create_task(_post(client, "slow"))
                await asyncio.sleep(0.05)
                with pytest.raises(httpx.PoolTimeout, match="no free connection within 0.05s"):
                    await _post(client, "queued")
                await slow
                return await _post(client, "after"), transport.open_connections

    answer, open_connections = asyncio.run(scenario())
    assert answer and open_connections == 1


def test_cancelled_waiters_leave_the_line_and_the_pool_keeps_serving():
    async def scenario():
        async with sim_server(latency=0.05) as server:
            transport = PooledTransport(max_connections=2)
            async with _client(server, transport) as client:
                tasks = [asyncio.create_task(_post(client, f"c{i}")) for i in range(10)]
                await asyncio.sleep(0.01)
                for task in tasks[2:]:
                    task.cancel()
                done = await asyncio.gather(*tasks, return_exceptions=True)
                answers = await asyncio.gather(*(_post(client, f"d{i}") for i in range(6)))
                return done, answers, transport, server.connections_opened

    done, answers, transport, opened = asyncio.run(scenario())
    assert all(isinstance(d, str) for d in done[:2])
    assert all(isinstance(d, asyncio.CancelledError) for d in done[2:])
    assert len(answers) == 6
    assert (
        repr(transport) == "<PooledTransport open=0/2 free=0 waiting=0>"
    )  # closed with the client
    assert opened <= 2


def test_errors_are_httpx_errors():
    async def scenario():
        transport = PooledTransport(max_connections=1)
        async with httpx.AsyncClient(transport=transport) as client:
            await client.post("http://127.0.0.1:9/v1/chat/completions", json={})

    with pytest.raises(httpx.ConnectError):
        asyncio.run(scenario())
