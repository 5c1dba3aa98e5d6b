"""The task engine in this process: order, progress callbacks, the no-Dask default (clusters: tests/integration)."""

from __future__ import annotations

import pytest

from sed import parallel
from sed.errors import ConfigError
from sed.parallel import Engine


def _square_plus(x: int, *, offset: int) -> int:
    return x * x + offset


def test_sequential_map_keeps_the_order_and_reports_each_task_done() -> None:
    done: list[int] = []
    with Engine(workers=1) as engine:
        out = engine.map(_square_plus, [3, 1, 2], desc="t", shared={"offset": 10}, per_task=2, on_done=done.append)
    assert out == [19, 11, 14] and done == [1, 2, 3]
    assert engine.provenance()["engine"] == "sequential" and engine.tasks_s > 0


def test_without_dask_the_default_runs_here_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(parallel, "_has_dask", lambda: False)
    assert Engine().kind == "sequential"
    assert "pip install 'sed[bench]'" in capsys.readouterr().err
    assert Engine(workers=2).kind == "dask-local"  # asked for explicitly: an error when started, not a fallback


def test_a_worker_count_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="workers=0"):
        Engine(workers=0)
