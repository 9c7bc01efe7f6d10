"""``packflow run`` on Kafka against the floor: the identity loop a user would
write with confluent-kafka (consume batches of 1,000, produce each value
unchanged with its key and headers, flush, commit), on the same broker (tansu
on 127.0.0.1, see tests/support/tansu.py) and the same events.

    .venv/bin/python benches/kafka.py                  # 200,000 events, 4 partitions
    .venv/bin/python benches/kafka.py --events 20000   # quicker

Both are timed as whole processes (interpreter start, imports and, for
packflow, loading the example backend included), less the broker's group-join
wait, which each measures from its subscription to its first assignment. The
events are ``make run``'s shape (packflow.sample_data) without malformed
ones, through examples/firewall-anomaly. The runs alternate (floor, packflow,
floor, ...) so that the load of a shared machine falls on both alike; the
median of each is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this file has benches/ on sys.path, not the repository.
sys.path.insert(0, str(REPO))
from tests.support import tansu  # noqa: E402
from tests.support.kafka_io import create_topics, produce, read_all, unique  # noqa: E402

EXAMPLE = REPO / "examples" / "firewall-anomaly"
PARTITIONS = 4
FAST_GROUP = {f"consumer.{k}": v for k, v in tansu.FAST_GROUP.items()}

#: The floor, as a user would write it; prints its join wait and its count.
FLOOR = r"""
import json, sys, time
from confluent_kafka import Consumer, KafkaError, Producer

bootstrap, source, target, group, expected = sys.argv[1:6]
expected = int(expected)
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "session.timeout.ms": 2000, "heartbeat.interval.ms": 300})
producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
subscribed = time.monotonic()
joined = []
consumer.subscribe([source], on_assign=lambda c, ps: joined.append(time.monotonic()))
done = 0
while done < expected:
    batch = consumer.consume(1000, 0.05)
    for msg in batch:
        if msg.error():
            continue
        headers = [("packflow-topic", msg.topic()), ("packflow-partition", str(msg.partition())),
                   ("packflow-offset", str(msg.offset()))]
        while True:
            try:
                producer.produce(target, msg.value(), msg.key(), headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        done += 1
    if batch:
        producer.flush()
        consumer.commit(asynchronous=False)
consumer.close()
print(json.dumps({"join": joined[0] - subscribed, "count": done}))
"""


def timed(command: list[str]) -> tuple[float, str, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, done.stdout, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = tansu.find_binary()
    if binary is None:
        raise SystemExit("no tansu binary: make tansu")
    from packflow.sample_data import sample_lines

    with tempfile.TemporaryDirectory(prefix="packflow-kafka-bench-") as tmp:
        broker = tansu.Broker(binary, Path(tmp) / "broker.log")
        try:
            broker.wait_ready()
            source = unique("events")
            create_topics(broker.bootstrap, PARTITIONS, source)
            lines = sample_lines(args.events)
            items = [(str(i % 64).encode(), line.rstrip(b"\n")) for i, line in enumerate(lines)]
            produce(broker.bootstrap, source, items)
            config = Path(tmp) / "kafka.properties"
            config.write_text("".join(f"{k}={v}\n" for k, v in FAST_GROUP.items()))
            floor_times, packflow_times = [], []
            for _ in range(args.rounds):
                target = unique("floor-out")
                create_topics(broker.bootstrap, PARTITIONS, target)
                floor_cmd = [sys.executable, "-c", FLOOR, broker.bootstrap, source, target]
                seconds, out, _ = timed(floor_cmd + [unique("floor"), str(args.events)])
                report = json.loads(out)
                assert report["count"] == args.events, report
                floor_times.append(seconds - report["join"])

                target = unique("packflow-out")
                create_topics(broker.bootstrap, PARTITIONS, target)
                stats = Path(tmp) / "stats.json"
                url = f"kafka://{broker.bootstrap}"
                seconds, _, err = timed(
                    [sys.executable, "-m", "packflow.cli", "run", str(EXAMPLE)]
                    + ["-i", f"{url}/{source}", "--group", unique("packflow")]
                    + ["-o", f"{url}/{target}", "--stop-when-idle", "0"]
                    + ["--kafka-config", str(config), "--stats", str(stats)]
                )
                summary = json.loads(stats.read_text())
                assert summary["produced"] == args.events, err
                packflow_times.append(seconds - summary["group_join_seconds"])
                written = read_all(broker.bootstrap, target, PARTITIONS, at_least=args.events)
                assert len(written) == args.events
                print(
                    f"floor {floor_times[-1]:.2f} s, packflow {packflow_times[-1]:.2f} s",
                    file=sys.stderr,
                )
        finally:
            broker.stop()
    floor, ours = statistics.median(floor_times), statistics.median(packflow_times)
    print(f"events: {args.events:,} through {PARTITIONS} partitions, median of {args.rounds}")
    print(f"floor (identity loop):  {floor:.2f} s  {args.events / floor:,.0f} events/s")
    print(f"packflow run:           {ours:.2f} s  {args.events / ours:,.0f} events/s")
    print(f"ratio: {ours / floor:.2f}x the floor")


if __name__ == "__main__":
    main()
