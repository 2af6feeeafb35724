"""The profile option, batch profiles, plotly figures and their offline HTML."""

import asyncio
import re

import pytest
from _clock import run_virtual
from _profile_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FanOut,
    Review,
    Stream,
    ThreeSteps,
    check_trace_format,
    faulty_resources,
    require_chromium,
)

import plait.profiling
from plait import ExecutionSettings, ResourceConfig, execute, run_batch, stream_batch
from plait.execution import events as ev
from plait.profiling import Profile, save_html

FAST = {"fast": {"provider": "simulated", "latency": 0.1, "max_concurrent": 2}}
EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", re.IGNORECASE)


def virtual(coro_fn):
    return run_virtual(coro_fn())


def test_public_names_are_sorted_and_present():
    # isort-style, as ruff keeps it: CONSTANTS, then Classes, then functions.
    def order(name):
        return (not name.isupper(), not name[0].isupper(), name)

    assert plait.profiling.__all__ == sorted(plait.profiling.__all__, key=order)
    assert {"Profile", "BubbleReport", "build_timeline", "chrome_trace", "save_html"} <= set(
        plait.profiling.__all__
    )
    for name in plait.profiling.__all__:
        assert getattr(plait.profiling, name) is not None


def test_profile_true_keeps_a_profile_built_from_the_runs_own_events():
    async def main():
        plain = await execute(ThreeSteps(), "t", resources=FAST)
        profiled = await execute(ThreeSteps(), "t", resources=FAST, profile=True)
        return plain, profiled

    plain, profiled = virtual(main)
    assert plain.profile is None
    assert isinstance(profiled.profile, Profile)
    attempts = [(a.key, a.slot, a.start, a.end) for a in profiled.profile.timeline.attempts]
    assert attempts == [
        ("a", 0, 0.0, pytest.approx(0.1)),
        ("b", 0, pytest.approx(0.1), pytest.approx(0.2)),
        ("c", 0, pytest.approx(0.2), pytest.approx(0.3)),
    ]
    assert profiled.bubbles() is profiled.profile.bubbles()
    # Without the option the same analysis is computed on demand from the events.
    assert plain.bubbles().critical_path == ["x", "a", "b", "c"]
    assert plain.bubbles().idle_by_cause["dependency"] == pytest.approx(0.2)


def test_execution_settings_profile_applies_to_every_run_inside():
    async def main():
        async with ExecutionSettings(resources=FAST, profile=True):
            return await execute(FanOut(2), "t")

    result = virtual(main)
    assert result.profile.timeline.endpoints == {"fast": 2}
    assert [a.module_path for a in result.profile.timeline.attempts][-1] == "join"


def test_a_batch_is_profiled_as_one_timeline_shared_by_its_items():
    seen = []

    async def main():
        return await run_batch(
            ThreeSteps(),
            ["one", "two"],
            resources=FAST,
            progress=False,
            profile=True,
            on_profile=seen.append,
        )

    items = virtual(main)
    (profile,) = seen
    assert all(item.result.profile is profile for item in items)
    keys = sorted(a.key for a in profile.timeline.attempts)
    assert keys == ["0:a", "0:b", "0:c", "1:a", "1:b", "1:c"]
    report = profile.bubbles()
    assert report.busy == pytest.approx(0.6)
    assert report.idle == pytest.approx(0.0, abs=1e-9)  # two chains keep both slots busy
    assert report.critical_path[-1] in ("0:c", "1:c") and len(report.critical_path) == 4


def test_on_profile_alone_turns_batch_profiling_on_and_sees_a_cut_short_stream():
    seen = []

    async def main():
        stream = stream_batch(
            ThreeSteps(), ["a", "b", "c"], resources=FAST, progress=False, on_profile=seen.append
        )
        async for _ in stream:
            break
        await stream.aclose()

    virtual(main)
    (profile,) = seen
    assert profile.timeline.status == "cancelled"
    assert {a.outcome for a in profile.timeline.attempts} >= {"done"}
    check_trace_format(profile.chrome_trace())


def test_a_batch_on_the_real_clock_gives_a_consistent_profile():
    async def main():
        seen = []
        resources = ResourceConfig(
            {
                "fast": {
                    "provider": "simulated",
                    "latency": 0.002,
                    "jitter": 0.002,
                    "max_concurrent": 3,
                },
                "smart": {
                    "provider": "simulated",
                    "latency": 0.003,
                    "max_concurrent": 2,
                    "rpm": 6000,
                },
            }
        )
        await run_batch(
            Review(),
            [f"doc {i}" for i in range(6)],
            resources=resources,
            progress=False,
            on_profile=seen.append,
        )
        return seen[0]

    profile = asyncio.run(main())
    check_trace_format(profile.chrome_trace())
    report = profile.bubbles()
    for usage in report.slots:
        assert usage.busy + usage.idle == pytest.approx(report.makespan, abs=1e-9)
    assert len(profile.timeline.attempts) == 6 * 5


def test_figures_build_from_a_run_with_retries_and_waits():
    result = run_virtual(execute(Review(), "text", resources=faulty_resources()))
    timeline = result.plot_timeline()
    names = [t.name for t in timeline.data]
    assert names[:2] == ["rate-limit wait", "summarize"]
    assert {"critic0", "critic1", "critic2", "verdict"} <= set(names)
    retries = next(t for t in timeline.data if t.name.startswith("retry"))
    assert len(retries.x) == 2
    rows = list(timeline.layout.yaxis.ticktext)
    assert rows == ["fast · slot 0", "fast · slot 1", "smart · slot 0", "smart · slot 1"]
    assert [line.y0 for line in timeline.layout.shapes] == [1.5]  # between the two endpoints
    critic0 = next(t for t in timeline.data if t.name == "critic0")
    assert list(critic0.marker.pattern.shape) == ["/", ""]  # the retried attempt is hatched

    utilization = result.plot_utilization()
    assert len(utilization.data) == 3 * 2  # held, busy, queued per endpoint
    bubbles = result.plot_bubbles()
    assert [t.name for t in bubbles.data] == [
        "busy",
        "dependency",
        "rate_limit",
        "backoff",
        "global_cap",
        "no_work",
    ]
    report = result.bubbles()
    fast = [t.x[0] for t in bubbles.data]
    assert sum(fast) == pytest.approx(report.endpoints["fast"].slots * report.makespan)


def test_figures_save_as_standalone_html_without_network_scripts(tmp_path):
    s = Stream("x")
    s.call("a", start=0, end=1)
    s.failed_attempt("b", start=0, end=0.5, delay=0.25, slot=1)
    s.call("b", start=1, end=2, attempt=2)
    profile = Profile(s.finish(2), endpoints={"fast": 2})
    for name, fig in (
        ("timeline", profile.plot_timeline()),
        ("utilization", profile.plot_utilization()),
        ("bubbles", profile.plot_bubbles()),
    ):
        path = save_html(fig, tmp_path / f"{name}.html")
        html = path.read_text(encoding="utf-8")
        assert "Plotly.newPlot" in html
        assert len(html) > 1_000_000  # plotly.js is embedded
        assert not EXTERNAL_SCRIPT.search(html)


def test_dataframe_lists_every_interval():
    s = Stream("x")
    s.call("a", start=0, end=1, wait=0.25)
    s.call("b", start=1, end=2, queued=0.5)
    frame = Profile(s.finish(2), endpoints={"fast": 1}).to_dataframe()
    rows = frame[["kind", "node", "start", "end"]].values.tolist()
    assert rows == [
        ["rate_limit", "a", 0.0, 0.25],
        ["upstream", "b", 0.0, 0.5],
        ["attempt", "a", 0.0, 1.0],
        ["queue", "b", 0.5, 1.0],
        ["attempt", "b", 1.0, 2.0],
    ]


@pytest.mark.browser
def test_the_timeline_html_renders_in_chromium_with_the_network_cut_off(tmp_path):
    require_chromium()
    from playwright import sync_api  # a test extra: tools/setup_tests.sh installs it

    result = run_virtual(execute(Review(), "text", resources=faulty_resources()))
    path = save_html(result.plot_timeline(), tmp_path / "timeline.html")
    requests, errors = [], []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 700})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.route(
                "http*://**", lambda route: (requests.append(route.request.url), route.abort())
            )
            page.goto(path.as_uri())
            page.wait_for_selector(".main-svg")
            ticks = page.locator(".ytick text").all_text_contents()
            bars = page.locator(".barlayer .point").count()
            legend = page.locator(".legendtext").all_text_contents()
        finally:
            browser.close()
    assert requests == [] and errors == []
    assert ticks == ["fast · slot 0", "fast · slot 1", "smart · slot 0", "smart · slot 1"]
    assert bars >= len(Profile.from_result(result).timeline.attempts)
    assert "failed or retried attempt" in legend and "rate-limit wait" in legend


def test_provider_error_text_is_escaped_in_hover_labels():
    s = Stream("x")
    s.add(ev.NodeQueued(0, "a", "fast"))
    s.add(ev.NodeStarted(0, "a", "fast", 1, 0))
    s.add(ev.NodeRetry(1, "a", "fast", 1, "TransientError: <img src=x onerror=alert(1)>", 1, 500))
    s.add(ev.NodeWaiting(2, "a", "fast", "backoff", 1))
    s.call("a", start=2, end=3, attempt=2)
    fig = Profile(s.finish(3), endpoints={"fast": 1}).plot_timeline()
    shown = [
        str(row[-1])
        for trace in fig.data
        if trace.customdata is not None
        for row in trace.customdata
    ]
    assert "TransientError: &lt;img src=x onerror=alert(1)&gt;" in shown
    assert not any("<img" in text for text in shown)


def test_graphs_come_from_the_run_started_event_when_not_given():
    result = virtual(lambda: execute(ThreeSteps(), "t", resources=FAST))
    report = Profile(result.events, endpoints=result.endpoints).bubbles()
    assert report.critical_path == ["x", "a", "b", "c"]
    assert report.critical_path_length == pytest.approx(0.3)


def test_a_batch_items_own_result_profiles_its_own_events():
    async def main():
        return await run_batch(ThreeSteps(), ["one", "two"], resources=FAST, progress=False)

    items = virtual(main)
    report = items[1].result.bubbles()
    assert report.critical_path == ["1:x", "1:a", "1:b", "1:c"]
    paths = {a.module_path for a in items[1].result.build_profile().timeline.attempts}
    assert paths == {"a", "b", "c"}
