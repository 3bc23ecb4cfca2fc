"""The coverage API's read side: village counters added up to every region level.

The coverage worker publishes, per (regency, source partition), the absolute counters of that
partition's villages in the regency to the compacted topic `ucj.coverage.village-counters`
(key `"<regency>@<partition>"`, value `{"regency", "partition", "villages": {code: counters},
"updated_at"}`). `RegionCountersView` holds the newest group per key and keeps running totals
for every village, district, regency, province and the nation: a new group moves the totals
by its difference from the group it replaces. It is pure (no I/O), so the rules are tested
without a broker. `CountersFeed` reads the topic into the view from the beginning (no consumer
group: every API process holds all regions) and tells stream subscribers which regions
changed. `coverage_of` renders one region the way the contract says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.regions import RegionDirectory, directory, level_of

log = logging.getLogger("ucj.coverage.counters")

SEGMENTS = ("PU", "BPU", "JAKON", "PMI")
STATUS_COUNTERS = ("registered", "active", "inactive", "terminated")

Counters = dict[str, int]
Villages = dict[str, Counters]


class MalformedCounters(ValueError):
    """A village-counters message that does not have the published shape."""


@dataclass(frozen=True, slots=True)
class VillageGroup:
    """What one source partition of the worker counts in the villages of one regency."""

    villages: Villages
    updated_at: datetime | None


def parse_key(key: str) -> tuple[str, int]:
    """`"12.75@3"` → `("12.75", 3)`."""
    regency, sep, partition = key.rpartition("@")
    if not sep or level_of(regency) != "regency" or not partition.isascii() \
            or not partition.isdigit():
        raise MalformedCounters(f"key {key[:60]!r} is not <regency>@<partition>")
    return regency, int(partition)


def parse_group(regency: str, partition: int, value: Any,
                regions: RegionDirectory) -> VillageGroup:
    if not isinstance(value, Mapping):
        raise MalformedCounters("value is not a JSON object")
    if value.get("regency", regency) != regency:
        raise MalformedCounters(f"value is for regency {value.get('regency')!r}, "
                                f"key for {regency!r}")
    if value.get("partition", partition) != partition:
        raise MalformedCounters("value and key name different partitions")
    raw = value.get("villages")
    if not isinstance(raw, Mapping):
        raise MalformedCounters("villages is not a JSON object")
    villages: Villages = {}
    for village, raw_counters in raw.items():
        if not isinstance(village, str) or not regions.is_village(village) \
                or not village.startswith(regency + "."):
            raise MalformedCounters(f"{str(village)[:40]!r} is not a village of {regency}")
        counters = _counters(raw_counters)
        if counters:
            villages[village] = counters
    return VillageGroup(villages, _timestamp(value.get("updated_at")))


def _counters(raw: Any) -> Counters:
    if not isinstance(raw, Mapping):
        raise MalformedCounters("a village's counters are not a JSON object")
    counters: Counters = {}
    for name, count in raw.items():
        # bool is an int in Python; a counter never is one.
        if not isinstance(name, str) or type(count) is not int or count < 0:
            raise MalformedCounters(f"counter {str(name)[:40]!r} is not a non-negative integer")
        if count:
            counters[name] = count
    return counters


def _timestamp(raw: Any) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise MalformedCounters("updated_at is not an ISO timestamp")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise MalformedCounters("updated_at is not an ISO timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _difference(new: Counters, old: Counters) -> Counters:
    names = new.keys() | old.keys()
    return {n: d for n in names if (d := new.get(n, 0) - old.get(n, 0))}


class RegionCountersView:
    """The newest village group per (regency, source partition), and every region's totals.

    Values are absolute, so applying the same message again, or replaying the whole topic,
    leaves the view as it was. Messages are applied in the topic's order: the last one per key
    is the newest (timestamps from different worker instances are not compared). A region's
    `updated_at` is the newest timestamp of a message that changed its counters.
    """

    def __init__(self, regions: RegionDirectory | None = None) -> None:
        self._regions = regions or directory()
        self._groups: dict[tuple[str, int], VillageGroup] = {}
        self._totals: dict[str, Counters] = {}
        self._updated: dict[str, datetime] = {}
        self._changed: set[str] = set()

    def apply(self, key: str, value: Mapping[str, Any] | None) -> str:
        """Apply one message (None is a tombstone: that partition no longer counts there).

        Returns the regency's code; raises MalformedCounters and changes nothing on a bad one.
        """
        regency, partition = parse_key(key)
        new = None if value is None else parse_group(regency, partition, value, self._regions)
        old = self._groups.pop((regency, partition), None)
        if new is not None:
            self._groups[(regency, partition)] = new
        old_villages = old.villages if old else {}
        new_villages = new.villages if new else {}
        for village in old_villages.keys() | new_villages.keys():
            delta = _difference(new_villages.get(village, {}), old_villages.get(village, {}))
            if delta:
                self._move(village, delta, new.updated_at if new else None)
        return regency

    def _move(self, village: str, delta: Counters, moment: datetime | None) -> None:
        for region in self._regions.lineage(village):
            totals = self._totals.setdefault(region, {})
            for name, change in delta.items():
                total = totals.get(name, 0) + change
                if total:
                    totals[name] = total
                else:
                    del totals[name]
            if not totals:
                del self._totals[region]
            if moment is not None and (region not in self._updated
                                       or self._updated[region] < moment):
                self._updated[region] = moment
            self._changed.add(region)

    def counters(self, code: str) -> Counters:
        """The region's counters summed over partitions; the standard ones are always present."""
        total: Counters = dict.fromkeys(STATUS_COUNTERS, 0)
        for name in segment_counter_names():
            total[name] = 0
        total.update(self._totals.get(code, {}))
        return total

    def updated_at(self, code: str) -> datetime | None:
        return self._updated.get(code)

    def regions(self) -> set[str]:
        """Codes of the regions with any participant counted."""
        return set(self._totals)

    def take_changes(self) -> set[str]:
        """Regions whose counters changed since the last call."""
        changed, self._changed = self._changed, set()
        return changed


def segment_counter_names() -> list[str]:
    return [f"{segment}.{name}" for segment in SEGMENTS for name in ("registered", "active")]


# --- one region's coverage, as the contract shapes it ----------------------------------------


@dataclass(frozen=True, slots=True)
class WorkforceFigure:
    """The working population of a region (BPS Sakernas, once a year), with year and source."""

    workforce: int
    year: int
    source: str


def ucj_ratio(active: int, workforce: int | None) -> float | None:
    """UCJ = active participants / working population; None without a workforce figure."""
    if not workforce:
        return None
    return round(active / workforce, 6)


def gap_to_target(active: int, workforce: int | None, target: float) -> int | None:
    """How many more active workers the region needs to reach `target` (a fraction, 0.5115).

    Decimal, not float: 0.3 * 10 must need 3 workers, not 4.
    """
    if not workforce:
        return None
    needed = math.ceil(Decimal(str(target)) * workforce)
    return max(0, needed - active)


def coverage_of(
    region: Mapping[str, str],
    counters: Mapping[str, int],
    updated_at: datetime | None,
    workforce: WorkforceFigure | None,
    *,
    target: float | None = None,
) -> dict[str, Any]:
    active = counters.get("active", 0)
    figure = workforce.workforce if workforce else None
    body: dict[str, Any] = {
        "region": dict(region),
        "workforce": figure,
        "workforce_year": workforce.year if workforce else None,
        "workforce_source": workforce.source if workforce else None,
        "registered": counters.get("registered", 0),
        "active": active,
        "inactive": counters.get("inactive", 0),
        "terminated": counters.get("terminated", 0),
        "by_segment": {
            segment: {"registered": counters.get(f"{segment}.registered", 0),
                      "active": counters.get(f"{segment}.active", 0)}
            for segment in SEGMENTS
        },
        "ucj": ucj_ratio(active, figure),
        "updated_at": updated_at.isoformat() if updated_at else None,
    }
    if target is not None:
        body["target"] = target
        body["gap_to_target"] = gap_to_target(active, figure, target)
    return body


# --- change notifications for stream subscribers ---------------------------------------------


class ChangeSubscription:
    """One stream client's pending changes: a set, so a slow client gets each changed region
    once (coalesced) however often it changed, and publishing never waits for it."""

    def __init__(self, wants: Callable[[str], bool]):
        self._wants = wants
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self.closed = False

    def notify(self, codes: Iterable[str]) -> None:
        relevant = [c for c in codes if self._wants(c)]
        if relevant:
            self._pending.update(relevant)
            self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next_changes(self, wait_seconds: float) -> set[str]:
        """The regions changed since the last call (empty after `wait_seconds` or once closed)."""
        if not self._pending and not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_seconds)
        self._wake.clear()
        pending, self._pending = self._pending, set()
        return pending


class ChangeHub:
    """Fans region changes out to stream subscribers."""

    def __init__(self) -> None:
        self._subscriptions: set[ChangeSubscription] = set()
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, wants: Callable[[str], bool]) -> ChangeSubscription:
        self._loop = asyncio.get_running_loop()
        subscription = ChangeSubscription(wants)
        if self.closed:
            subscription.close()
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: ChangeSubscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, codes: set[str]) -> None:
        for subscription in list(self._subscriptions):
            subscription.notify(codes)

    def close(self) -> None:
        """End every stream (shutdown): subscribers see `closed` and finish their responses."""
        self.closed = True
        for subscription in list(self._subscriptions):
            subscription.close()

    def close_threadsafe(self) -> None:
        """close(), from a signal handler or another thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.close)
        else:
            self.closed = True


# --- the Kafka feed --------------------------------------------------------------------------


class _TopicMissing(Exception):
    pass


class CountersFeed:
    """Reads the village-counters topic from the beginning into the view, then follows it.

    No consumer group and no commits: every API process assigns itself all partitions and
    keeps the whole (small, compacted) topic in memory. `ready` is set once the view has
    caught up with the end offsets seen at start; it stays set through later broker outages
    (the view keeps serving the last known counters while the feed reconnects).
    """

    def __init__(self, view: RegionCountersView, hub: ChangeHub, *, bootstrap_servers: str,
                 topic: str, client_id: str = "ucj-coverage-api",
                 retry_seconds: tuple[float, float] = (0.5, 10.0)):
        self.view = view
        self.hub = hub
        self.topic = topic
        self.ready = asyncio.Event()
        self.malformed = 0
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._retry_min, self._retry_max = retry_seconds
        # Next offset to read per partition, so a reconnect resumes instead of replaying.
        self._positions: dict[int, int] = {}
        self._followed = False

    async def run(self) -> None:
        delay = self._retry_min
        missing_logged = False
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except _TopicMissing:
                # The stack creates topics (the broker does not): wait for it, quietly.
                log.log(logging.DEBUG if missing_logged else logging.WARNING,
                        "village-counters feed: topic %s does not exist yet; waiting", self.topic)
                missing_logged = True
            except (KafkaError, OSError) as exc:
                log.warning("village-counters feed: %s: %s; retrying in %.1fs",
                            type(exc).__name__, exc, delay)
            except Exception:
                log.exception("village-counters feed failed; retrying in %.1fs", delay)
            if self._followed:  # it worked for a while: retry soon again
                self._followed, delay = False, self._retry_min
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)

    async def _follow(self) -> None:
        partitions = await self._topic_partitions()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._client_id,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        try:
            await consumer.start()
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            self._followed = True
            for tp in tps:
                if tp.partition in self._positions:
                    consumer.seek(tp, self._positions[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
            ends = await consumer.end_offsets(tps) if not self.ready.is_set() else {}
            log.info("village-counters feed: following %s (%d partitions)", self.topic, len(tps))
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=5000)
                for tp, messages in batch.items():
                    for message in messages:
                        self._apply(message.key, message.value, tp.partition, message.offset)
                        self._positions[tp.partition] = message.offset + 1
                changed = self.view.take_changes()
                if changed:
                    self.hub.publish(changed)
                if not self.ready.is_set() and await self._caught_up(consumer, ends):
                    self.ready.set()
                    log.info("village-counters feed: caught up (%d regions)",
                             len(self.view.regions()))
        finally:
            await consumer.stop()

    async def _topic_partitions(self) -> set[int]:
        """The topic's partitions, asked of the broker. (A consumer without a group knows no
        topic's metadata until it is assigned one: `partitions_for_topic` says None.)"""
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap_servers,
                                    client_id=self._client_id)
        await admin.start()
        try:
            described = await admin.describe_topics([self.topic])
        finally:
            await admin.close()
        for topic in described:
            if topic.get("topic") == self.topic and topic.get("error_code") == 0:
                partitions = {p["partition"] for p in topic.get("partitions", ())}
                if partitions:
                    return partitions
        raise _TopicMissing(self.topic)

    async def _caught_up(self, consumer: AIOKafkaConsumer,
                         ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if end == 0 or self._positions.get(tp.partition, 0) >= end:
                continue
            # Else ask the position, not the last offset read: control records and compacted
            # gaps have offsets no message carries. Bounded: position() waits for an offset
            # reset, which hangs while a new topic's partition has no leader yet.
            try:
                if await asyncio.wait_for(consumer.position(tp), 2.0) < end:
                    return False
            except TimeoutError:
                return False
        return True

    def _apply(self, key: bytes | None, value: bytes | None, partition: int, offset: int) -> None:
        try:
            if key is None:
                raise MalformedCounters("message has no key")
            decoded = None if value is None else orjson.loads(value)
            self.view.apply(key.decode("utf-8"), decoded)
        except (MalformedCounters, UnicodeDecodeError, orjson.JSONDecodeError) as exc:
            self.malformed += 1
            log.error("village-counters feed: skipped malformed message at %s[%d]@%d: %s",
                      self.topic, partition, offset, exc)
