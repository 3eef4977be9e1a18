"""One process of the multi-process session test (tests/test_session_processes.py).

Usage: python _session_worker.py BOOTSTRAP DATA_SOURCE WORKDIR INDEX SEED OPS KEYS...

Does OPS random operations on the shared session KEYS (creates with caller keys, identifier and
detail updates, associates, ends), logs every outcome to WORKDIR/log-INDEX.json, then waits for
the other workers to finish, catches up and dumps its view to WORKDIR/view-INDEX.json.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import uuid
from pathlib import Path

from aiowriter import SessionManager, StreamingConfig


async def main() -> None:
    bootstrap, ds, workdir, index, seed, ops, *keys = sys.argv[1:]
    me, n = int(index), int(ops)
    rng = random.Random(int(seed))
    work = Path(workdir)
    log: list[dict[str, object]] = []
    async with SessionManager(
        StreamingConfig(bootstrap_servers=bootstrap), operation_timeout=60
    ) as sm:
        (work / f"ready-{me}").touch()
        # Other processes signal through files; no asyncio.Event can span processes.
        while len(list(work.glob("ready-*"))) < 3:  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.05)  # start together: the races are the point
        for i in range(n):
            key = rng.choice(keys)
            roll = rng.random()
            if roll < 0.15:
                op, value = "create", ""
                result = await sm.create_new_session(
                    ds, identifier="shared", session_key=key, timeout=60
                )
            elif roll < 0.45:
                op, value = "identifier", f"w{me}-{i}"
                result = await sm.update_identifier(ds, key, value)
            elif roll < 0.75:
                op, value = "details", f"w{me}-{i}"
                result = await sm.update_session_details(ds, key, {value: str(i)})
            elif roll < 0.95:
                op, value = "associate", str(uuid.UUID(int=rng.getrandbits(128)))
                result = await sm.add_associate_session(ds, key, value)
            else:
                op, value = "end", ""
                result = await sm.end_session(ds, key)
            log.append(
                {
                    "op": op,
                    "key": key,
                    "value": value,
                    "success": result.success,
                    "error": type(result.error).__name__ if result.error else None,
                    "offset": getattr(result, "offset", None),
                    "attempts": getattr(result, "attempts", 0),
                }
            )
            await asyncio.sleep(rng.random() * 0.01)
        # Keys a failed call of ours dropped are given back in the background: done before the
        # others take their views (the log files say so), bounded by the test's deadline.
        while sm.statistics().restores_pending:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        (work / f"log-{me}.json").write_text(json.dumps(log))
        while len(list(work.glob("log-*.json"))) < 3:  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.05)
        assert sm._follower is not None
        await sm._follower.sync(30)
        view = {}
        for key in keys:
            got = await sm.get_session_info(ds, key)
            if got.success and got.data is not None:
                s = got.data
                view[key] = {
                    "identifier": s.identifier,
                    "details": dict(s.details),
                    "associates": list(s.associate_session_keys),
                    "completed": s.completed,
                }
        (work / f"view-{me}.json").write_text(json.dumps(view))


if __name__ == "__main__":
    asyncio.run(main())
