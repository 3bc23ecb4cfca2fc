"""The coverage worker's Kafka settings that decide how fast a burst of events is counted."""

from __future__ import annotations

import asyncio

import uvloop

from services.coverage.faust_transport import FETCH_MAX_WAIT_MS
from services.coverage.worker import WorkerSettings, create_app, use_uvloop


async def test_the_worker_consumer_waits_at_most_50_ms_per_fetch_not_faust_s_1_5_s(tmp_path):
    app = create_app(WorkerSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
                                    UCJ_COVERAGE_STATE_DIR=str(tmp_path)))
    kafka_consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert kafka_consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 50
    finally:
        await kafka_consumer.stop()


def test_the_worker_batches_what_it_produces_for_10_ms(tmp_path):
    app = create_app(WorkerSettings(UCJ_COVERAGE_STATE_DIR=str(tmp_path)))
    assert app.conf.producer_linger == 0.01


def test_the_worker_runs_its_loops_on_uvloop():
    policy = asyncio.get_event_loop_policy()
    try:
        use_uvloop()
        loop = asyncio.new_event_loop()
        try:
            assert isinstance(loop, uvloop.Loop)
        finally:
            loop.close()
    finally:
        asyncio.set_event_loop_policy(policy)


def test_long_lived_objects_are_frozen_out_of_the_collectors_sight():
    import gc

    from shared.gc_tuning import YOUNG_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 80_000  # the villages at least
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
