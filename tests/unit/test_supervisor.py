"""The local stack's supervisor restarts a dead service as docker compose's
`restart: unless-stopped` does, and `status` fails on an outbox that waits too long."""

from deploy.local.stack import Backlog, restart_delay


def test_a_process_that_ran_a_while_is_restarted_at_once():
    assert restart_delay(ran_for=120.0, quick_deaths=0) == (0.0, 0)


def test_a_process_that_dies_soon_after_starting_waits_before_its_restart():
    assert restart_delay(ran_for=2.0, quick_deaths=0) == (1.0, 1)


def test_each_quick_death_in_a_row_doubles_the_wait_up_to_the_cap():
    waits, quick = [], 0
    for _ in range(9):
        wait, quick = restart_delay(ran_for=0.5, quick_deaths=quick)
        waits.append(wait)
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_a_long_run_forgives_the_quick_deaths_before_it():
    assert restart_delay(ran_for=10.0, quick_deaths=6) == (0.0, 0)


def test_an_outbox_is_stalled_when_its_oldest_row_waited_longer_than_the_threshold():
    assert Backlog("ucj_registration", rows=60_000, oldest_age=61.0).stalled(60.0)
    assert not Backlog("ucj_registration", rows=60_000, oldest_age=59.0).stalled(60.0)


def test_an_empty_outbox_is_never_stalled():
    assert not Backlog("ucj_registration", rows=0, oldest_age=None).stalled(60.0)


def test_an_outbox_that_cannot_be_read_counts_as_stalled():
    assert Backlog("ucj_registration", error="TimeoutError").stalled(60.0)
