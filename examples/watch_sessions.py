"""Print every session known on the cluster, then follow new sessions and their changes live
(written by anyone: this SDK, the Stream API server, another process). Stop with Ctrl+C.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 python examples/watch_sessions.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from aiowriter import (
    SessionAssociated,
    SessionEnded,
    SessionManager,
    SessionStarted,
    SessionUpdated,
    StreamingConfig,
)


async def main() -> None:
    config = StreamingConfig(
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    async with SessionManager(config) as sessions:
        for s in (await sessions.get_all_sessions()).unwrap():
            state = "ended" if s.completed else "running"
            print(f"{s.data_source:20} {s.session_key} {state:8} {s.identifier!r}")
        print("-- live --")
        # Subscribe before anything else can happen; a slow reader loses the oldest events,
        # counted in events.dropped, and never slows the manager down.
        async with sessions.events(max_queued=1000) as events:
            async for event in events:
                s = event.session
                if isinstance(event, SessionStarted):
                    print(f"started  {s.data_source} {s.session_key} {s.identifier!r}")
                elif isinstance(event, SessionUpdated):
                    print(f"updated  {s.session_key} {sorted(event.changed)}")
                elif isinstance(event, SessionAssociated):
                    print(f"assoc.   {s.session_key} + {event.associate_key}")
                elif isinstance(event, SessionEnded):
                    print(f"ended    {s.session_key}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
