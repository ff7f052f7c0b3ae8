"""The GIL, threads, asyncio, Ctrl-C, cancel tokens, callbacks that raise, and iteration."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Iterator, List

import pytest

import msbimage
from msbimage import events
from helpers import Served, ThrottlingProxy, tmp_entries

REFS = [
    "fixtures/standard:gzip",
    "fixtures/standard:zstd",
    "fixtures/standard:none",
    "fixtures/multi:latest",
]


@pytest.fixture
def slow(registry: Served) -> Iterator[ThrottlingProxy]:
    """The registry behind a proxy sending blobs at 256 KiB/s (the 3 MiB layer takes ~12 s)."""
    proxy = ThrottlingProxy(registry.host)
    yield proxy
    proxy.close()


def _consistent(cache: Path) -> None:
    # No staging left; trees replaced by forced pulls (`trash-*`) stay while results that
    # hold their layers are alive (the cache_dir fixture checks they go with the results).
    assert [e for e in tmp_entries(cache) if not e.startswith("trash-")] == []
    for layer in (cache / "layers" / "sha256").iterdir():
        assert (layer / "meta.json").is_file(), f"half-published layer {layer}"


def test_the_gil_is_released_during_a_pull(client: msbimage.Registry, slow: ThrottlingProxy) -> None:
    count = 0
    stop = threading.Event()

    def counter() -> None:
        nonlocal count
        while not stop.is_set():
            count += 1

    thread = threading.Thread(target=counter)
    thread.start()
    token = msbimage.CancelToken()
    threading.Timer(1.0, token.cancel).start()
    start = time.monotonic()
    try:
        with pytest.raises(msbimage.CancelledError):
            client.pull(f"{slow.host}/fixtures/standard:gzip", cancel=token)
    finally:
        stop.set()
        thread.join()
    elapsed = time.monotonic() - start
    # A pure-Python loop on this machine counts millions a second; with the GIL held by the
    # pull it would not count at all.
    assert count > 100_000 * elapsed, (count, elapsed)


def test_keyboard_interrupt_cancels_within_200ms(
    client: msbimage.Registry, cache_dir: Path, slow: ThrottlingProxy, registry: Served
) -> None:
    started = threading.Event()
    sent: List[float] = []

    def progress(event: msbimage.PullEvent) -> None:
        if isinstance(event, events.LayerDownloadProgress):
            started.set()

    def interrupt() -> None:
        started.wait(30)
        time.sleep(0.3)  # well inside the download and extraction
        assert any((cache_dir / "tmp").iterdir()), "no staging directory to clean up"
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt).start()
    with pytest.raises(KeyboardInterrupt):
        client.pull(f"{slow.host}/fixtures/standard:gzip", progress=progress)
    latency = time.monotonic() - sent[0]
    print(f"KeyboardInterrupt {latency * 1000:.1f} ms after SIGINT")
    assert latency < 0.2, f"KeyboardInterrupt took {latency * 1000:.0f} ms"
    _consistent(cache_dir)
    # The cache is fine afterwards.
    assert len(client.pull(registry.ref("fixtures/standard:gzip")).layers) == 3


def test_a_cancel_token_works_from_another_thread(
    client: msbimage.Registry, cache_dir: Path, slow: ThrottlingProxy
) -> None:
    token = msbimage.CancelToken()
    got: List[msbimage.PullEvent] = []

    def progress(event: msbimage.PullEvent) -> None:
        got.append(event)
        if isinstance(event, events.LayerExtractStarted):
            threading.Thread(target=token.cancel).start()

    start = time.monotonic()
    with pytest.raises(msbimage.CancelledError):
        client.pull(f"{slow.host}/fixtures/standard:gzip", progress=progress, cancel=token)
    assert token.cancelled and time.monotonic() - start < 10
    n = len(got)
    time.sleep(0.2)
    assert len(got) == n, "a progress callback ran after pull returned"
    _consistent(cache_dir)


def test_an_exception_in_the_callback_cancels_and_is_raised(
    client: msbimage.Registry, cache_dir: Path, registry: Served
) -> None:
    calls: List[msbimage.PullEvent] = []

    class Stop(Exception):
        pass

    def progress(event: msbimage.PullEvent) -> None:
        calls.append(event)
        if isinstance(event, events.LayerDownloadProgress):
            raise Stop("enough")

    with pytest.raises(Stop, match="enough"):
        client.pull(registry.ref("fixtures/standard:gzip"), progress=progress)
    # No callback after the one that raised.
    assert isinstance(calls[-1], events.LayerDownloadProgress)
    assert sum(isinstance(e, events.LayerDownloadProgress) for e in calls) == 1
    _consistent(cache_dir)
    assert len(client.pull(registry.ref("fixtures/standard:gzip")).layers) == 3


def test_concurrent_pulls_from_threads_share_one_cache(
    client: msbimage.Registry, cache_dir: Path, registry: Served
) -> None:
    results: List[object] = [None] * 8
    counts = [0] * 8

    def pull(i: int) -> None:
        def progress(_: msbimage.PullEvent) -> None:
            counts[i] += 1

        try:
            results[i] = client.pull(registry.ref(REFS[i % 4]), progress=progress)
        except BaseException as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, r in enumerate(results):
        assert isinstance(r, msbimage.PullResult), (i, r)
        assert r.layers and counts[i] > 0
    assert results[0].layers == results[4].layers  # type: ignore[union-attr]
    # A second client on the same cache sees everything.
    other = msbimage.Registry(msbimage.Platform("linux", "amd64"), msbimage.GlobalCache(cache_dir))
    for ref in REFS[:3]:
        assert other.pull(registry.ref(ref), pull_policy="never").cached
    _consistent(cache_dir)


def test_asyncio_gather_and_cancel(
    client: msbimage.Registry, cache_dir: Path, registry: Served, slow: ThrottlingProxy,
    tmp_path: Path,
) -> None:
    # The slow pull goes to a cache of its own (the other holds its layers already).
    slow_cache = tmp_path / "slow-cache"
    slow_client = msbimage.Registry(
        msbimage.Platform("linux", "amd64"), msbimage.GlobalCache(slow_cache), durable=False
    )

    async def main() -> None:
        results = await asyncio.gather(*(client.pull_async(registry.ref(r)) for r in REFS * 2))
        assert all(isinstance(r, msbimage.PullResult) and r.layers for r in results)
        assert sum(not r.cached for r in results) >= 4

        with pytest.raises(msbimage.NotCachedError):
            await client.pull_async(f"{slow.host}/fixtures/standard:gzip", pull_policy="never")

        seen: List[msbimage.PullEvent] = []
        task = asyncio.ensure_future(
            slow_client.pull_async(f"{slow.host}/fixtures/standard:gzip", progress=seen.append)
        )
        while not any(isinstance(e, events.LayerDownloadProgress) for e in seen):
            await asyncio.sleep(0.01)
        start = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - start < 2
        # The pull itself stopped and cleaned up before the task ended.
        assert tmp_entries(slow_cache) == []

        # The loop stays responsive while pulls run.
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        tick = asyncio.ensure_future(ticker())
        await client.pull_async(registry.ref("fixtures/standard:gzip"), force=True)
        tick.cancel()
        assert ticks > 1

    asyncio.run(main())
    _consistent(cache_dir)


def test_pull_iter_yields_events_then_the_result(client: msbimage.Registry, registry: Served) -> None:
    it = client.pull_iter(registry.ref("fixtures/standard:gzip"))
    with pytest.raises(RuntimeError):
        it.result
    seen = list(it)
    assert isinstance(seen[0], events.Resolving) and isinstance(seen[-1], events.Complete)
    assert sum(isinstance(e, events.LayerIndexComplete) for e in seen) == 3
    assert len(it.result.layers) == 3

    with pytest.raises(msbimage.NotCachedError):
        for _ in client.pull_iter(registry.ref("fixtures/standard:none"), pull_policy="never"):
            pass


def test_leaving_a_pull_iter_early_cancels_it(
    client: msbimage.Registry, cache_dir: Path, slow: ThrottlingProxy
) -> None:
    start = time.monotonic()
    with client.pull_iter(f"{slow.host}/fixtures/standard:gzip") as it:
        for event in it:
            if isinstance(event, events.LayerExtractStarted):
                break
    assert time.monotonic() - start < 10
    _consistent(cache_dir)
    token = msbimage.CancelToken()
    it = client.pull_iter(f"{slow.host}/fixtures/standard:gzip", cancel=token)
    threading.Timer(0.5, token.cancel).start()
    with pytest.raises(msbimage.CancelledError):
        list(it)
    _consistent(cache_dir)
