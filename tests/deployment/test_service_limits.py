"""The service's limits without a server: the command line's options and the worker pool's
bound on pending requests."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sklearn_fhe.cli import byte_size, main

pytest.importorskip("fastapi")
from fastapi import HTTPException  # noqa: E402

from sklearn_fhe.deployment.http_service import ServiceLimits, WorkerPool  # noqa: E402


@pytest.mark.parametrize("text, size", [("65536", 65536), ("64K", 65536), ("16m", 16 << 20),
                                        ("2G", 2 << 30)])
def test_byte_sizes(text, size):
    assert byte_size(text) == size


def test_serve_refuses_bad_limits_and_directories(tmp_path, capsys):
    assert main(["serve", str(tmp_path), "--workers", "0"]) == 2
    assert "must be positive: workers" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "not a saved sklearn_fhe model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", str(tmp_path), "--max-request-bytes", "12Q"])
    assert "not a size: '12Q'" in capsys.readouterr().err


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="max_pending"):
        ServiceLimits(max_pending=0)


def test_pool_refuses_past_its_pending_bound():
    """With one request running and a bound of one, the next gets 503 at once."""
    release = threading.Event()

    async def scenario():
        pool = WorkerPool(workers=1, max_pending=1)
        running = asyncio.ensure_future(pool.run(release.wait, 30))
        await asyncio.sleep(0.05)
        with pytest.raises(HTTPException) as refused:
            await pool.run(lambda: None)
        release.set()
        assert await running is True and pool.pending == 0
        pool.shutdown()
        return refused.value

    refused = asyncio.run(scenario())
    assert refused.status_code == 503 and refused.headers == {"Retry-After": "1"}
