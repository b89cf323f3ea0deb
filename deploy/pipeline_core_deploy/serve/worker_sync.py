"""How the worker processes of one server (``--workers N``) stay one server to their clients.

- **The model repository**: a load or unload is done by the worker the request reached, then written
  as one line to ``repository.log`` in the folder the workers share; every other worker follows the
  log (polling it every 50 ms) and applies the line to its own models, then records how far it got
  (``applied-INDEX``). The request is answered once every worker has applied it (or after
  ``BROADCAST_SECONDS``, with a warning in the log), so after a 200 every worker serves the new state.
  A worker that is restarted replays the whole log, so it serves what the others serve.
- **Statistics**: each worker writes its own statistics to ``stats-INDEX.json`` at most every half
  second (when they changed); the statistics endpoint adds the other workers' files to the answering
  worker's live figures. Another worker's part is therefore at most about half a second old.
- **Metrics** need nothing here: prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``,
  set by the supervisor) merges every worker's counters and histograms on each scrape.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_core_deploy.serve.protocol import ProtocolError

if TYPE_CHECKING:
    from pipeline_core_deploy.serve.dataplane import DataPlane

log = logging.getLogger("pipeline_core_deploy.serve")

POLL_SECONDS = 0.05
STATISTICS_SECONDS = 0.5
BROADCAST_SECONDS = 120.0


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)


class WorkerSync:
    """One worker's side of the shared folder."""

    def __init__(self, shared: Path, index: int, count: int) -> None:
        self.shared, self.index, self.count = shared, index, count
        self.log_path = shared / "repository.log"
        self.me = f"{index}:{os.getpid()}"  # a restarted worker is another process: it replays its own old lines
        self.applied = 0
        self._statistics_written = -1

    def _entries(self) -> list[dict[str, Any]]:
        try:
            text = self.log_path.read_text()
        except FileNotFoundError:
            return []
        complete = text[: text.rfind("\n") + 1]  # a line being written is not read yet
        return [json.loads(line) for line in complete.splitlines() if line]

    def _append(self, entry: dict[str, Any]) -> int:
        """Append ``entry``; its number in the log (from 1), which is its generation."""
        with open(self.log_path, "a+") as stream:
            fcntl.flock(stream, fcntl.LOCK_EX)
            try:
                stream.seek(0)
                generation = sum(1 for line in stream if line.strip()) + 1
                stream.write(json.dumps(entry) + "\n")
                stream.flush()
            finally:
                fcntl.flock(stream, fcntl.LOCK_UN)
        return generation

    def _acknowledge(self) -> None:
        _write_atomically(self.shared / f"applied-{self.index}", str(self.applied))

    def _acknowledged(self, index: int) -> int:
        try:
            return int((self.shared / f"applied-{index}").read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    async def broadcast(self, action: str, name: str) -> None:
        """Tell the other workers to ``action`` (load or unload) ``name``, which this one has done, and
        wait until every one has."""
        generation = self._append({"action": action, "name": name, "by": self.me})
        deadline = time.monotonic() + BROADCAST_SECONDS
        others = [i for i in range(self.count) if i != self.index]
        while time.monotonic() < deadline:
            behind = [i for i in others if self._acknowledged(i) < generation]
            if not behind:
                return
            await asyncio.sleep(POLL_SECONDS)
        log.warning("%s of model %r: workers %s had not applied it after %.0f s; they will when they can", action, name, behind, BROADCAST_SECONDS)

    async def _apply(self, plane: DataPlane, entry: dict[str, Any]) -> None:
        assert plane.loader is not None
        try:
            if entry["action"] == "load":
                await plane.loader.load(entry["name"], plane.attach)
            else:
                await plane.loader.unload(entry["name"])
        except ProtocolError as error:  # e.g. a bundle changed between two workers' loads: the index says why
            log.warning("worker %d: %s of model %r (asked of worker %s): %s", self.index, entry["action"], entry["name"], entry["by"], error)

    async def _follow(self, plane: DataPlane) -> None:
        last_statistics = 0.0
        while True:
            for entry in self._entries()[self.applied :]:
                if entry["by"] != self.me:
                    await self._apply(plane, entry)
                self.applied += 1
                self._acknowledge()
            if time.monotonic() - last_statistics >= STATISTICS_SECONDS:
                self.write_statistics(plane)
                last_statistics = time.monotonic()
            await asyncio.sleep(POLL_SECONDS)

    @asynccontextmanager
    async def following(self, plane: DataPlane) -> AsyncIterator[None]:
        """The log followed (and the statistics written) while the server runs; ``ready-PID`` tells the
        supervisor this worker started (a worker that dies later is started again, one that never
        got here is not)."""
        self._acknowledge()
        (self.shared / f"ready-{os.getpid()}").touch()
        task = asyncio.get_running_loop().create_task(self._follow(plane))
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.write_statistics(plane)

    def write_statistics(self, plane: DataPlane) -> None:
        """This worker's statistics to ``stats-INDEX.json``, when they changed since the last write."""
        models = list(plane.repository)
        done = sum(m.statistics.success.count + m.statistics.fail.count + m.statistics.execution_count for m in models)
        if done == self._statistics_written:
            return
        _write_atomically(self.shared / f"stats-{self.index}.json",
                          json.dumps([m.statistics.as_json(m.name, m.version) for m in models]))
        self._statistics_written = done

    def others_statistics(self) -> list[dict[str, Any]]:
        """The other workers' last written statistics, every model version of each."""
        found = []
        for index in range(self.count):
            if index != self.index:
                try:
                    found += json.loads((self.shared / f"stats-{index}.json").read_text())
                except (FileNotFoundError, ValueError):
                    pass
        return found
