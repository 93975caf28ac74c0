"""``streamrec worker | produce | tail | demo``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from streamrec.core.config import Settings, UserError


def register(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser("worker", help="run the Faust stream worker against what is configured")
    worker.add_argument("--loglevel", default="warning")
    worker.set_defaults(func=cmd_worker)

    topics = sub.add_parser("topics", help="create streamrec's topics (profile's partitions)")
    topics.set_defaults(func=cmd_topics)

    produce = sub.add_parser("produce", help="replay a dataset or a JSONL file into Kafka")
    source = produce.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=["ml-100k"], help="MovieLens-100K from recbole")
    source.add_argument("--file", type=Path, help="a JSONL file of click events")
    produce.add_argument("--rate", type=float, default=0.0, help="events per second (0 = max)")
    produce.add_argument("--limit", type=int, default=0, help="stop after N events (0 = all)")
    produce.add_argument("--no-items", action="store_true", help="do not send the catalogue")
    produce.set_defaults(func=cmd_produce)

    tail = sub.add_parser("tail", help="print recommendations as they arrive")
    tail.add_argument("--topic", default=None, help="topic to read (default: recommendations)")
    tail.add_argument("--from-beginning", action="store_true")
    tail.set_defaults(func=cmd_tail)

    demo = sub.add_parser("demo", help="up, worker, replay N events, wait for answers, down")
    demo.add_argument("--events", type=int, default=2000)
    demo.add_argument("--malformed", type=float, default=0.01, help="share of malformed events")
    demo.add_argument("--rate", type=float, default=0.0, help="events per second (0 = max)")
    demo.add_argument("--workers", type=int, default=1)
    demo.add_argument("--no-model", action="store_true", help="skip Triton and the model")
    demo.add_argument("--json", action="store_true", help="machine-readable summary")
    demo.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for answers")
    demo.set_defaults(func=cmd_demo)


def cmd_worker(args: argparse.Namespace) -> int:
    from faust.worker import Worker

    from streams.app import PendingRuntime, build_app
    from streams.kafka_io import ensure_topics
    from streams.observability import json_logging_config
    from streams.probes import worker_probes
    from streams.runtime import worker_identity
    from streams.transport import use_event_loop

    settings = Settings.from_env().resolved()
    settings.require_redis()
    use_event_loop(settings.worker.event_loop)
    asyncio.run(ensure_topics(settings))
    runtime = PendingRuntime(settings)
    app = build_app(settings, runtime)
    probes = worker_probes(settings, runtime, app) if settings.observability.enabled else None

    class StreamrecWorker(Worker):
        async def on_start(self) -> None:
            await super().on_start()
            if probes is None:
                return
            try:  # /health answers from the start, /ready once started
                await probes.start()
            except OSError as exc:  # the port is taken: serve the stream, say so loudly
                self.log.error("no /metrics, /health, /ready on %s:%s (%s): set "
                               "STREAMREC_OBSERVABILITY__PORT (0 = any free port)",
                               probes.host, probes.port, exc)

        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            built = await runtime.wait()
            if probes is not None:
                probes.readiness.started = True
                built.endpoint = probes.address
            await built.mark_ready()

        async def on_shutdown(self) -> None:
            # SIGTERM: the app (agents, then the consumer's final commit of every acknowledged
            # batch) has stopped; only now close the producer (flushing it), Redis and Triton
            await super().on_shutdown()
            await runtime.close()
            if probes is not None:
                await probes.stop()

    logging_config = None
    if settings.observability.log_format == "json":
        logging_config = json_logging_config(args.loglevel.upper(), worker_identity())
    worker = StreamrecWorker(app, loglevel=args.loglevel, quiet=True, redirect_stdouts=False,
                             logging_config=logging_config)
    worker.execute_from_commandline()
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from streams.kafka_io import all_topics, ensure_topics

    settings = Settings.from_env().resolved()
    asyncio.run(ensure_topics(settings))
    print(f"topics ready ({settings.kafka.broker['topic_partitions']} partitions for new ones): "
          + ", ".join(all_topics(settings)))
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from streamrec.cli.producer import produce_dataset, produce_file

    settings = Settings.from_env().resolved()
    if args.file is not None:
        if not args.file.exists():
            raise UserError(f"no such file: {args.file}")
        n = asyncio.run(produce_file(settings, args.file, rate=args.rate, limit=args.limit))
    else:
        n = asyncio.run(
            produce_dataset(
                settings, args.dataset, rate=args.rate, limit=args.limit,
                with_items=not args.no_items,
            )
        )
    print(f"sent {n} events to {settings.kafka.clicks_topic}", file=sys.stderr)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from streams.kafka_io import read_json, start_consumer

    settings = Settings.from_env().resolved()
    topic = args.topic or settings.kafka.recommendations_topic

    async def run() -> None:
        consumer = await start_consumer(settings, topic, from_beginning=args.from_beginning)
        try:
            async for msg, value in read_json(consumer):
                line = value if value is not None else {"raw": repr(msg.value)}
                print(json.dumps(line), flush=True)
        finally:
            await consumer.stop()

    asyncio.run(run())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streamrec.cli.demo import DemoOptions, run_demo

    options = DemoOptions(
        events=args.events,
        malformed_share=args.malformed,
        rate=args.rate,
        workers=args.workers,
        use_model=not args.no_model,
        timeout_s=args.timeout,
        as_json=args.json,
    )
    return run_demo(Settings.from_env(), options)
