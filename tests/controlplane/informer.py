"""A background list + watch loop for the harness's doubles (mig-manager, runtime, storage).

Each double reacts to objects as a controller does: a full list, then a watch from its
resourceVersion; on 410 Gone or a broken connection, list again. `handle(type, obj)` runs on
the informer's own thread; an exception in it is logged and does not stop the loop.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Callable

from .rest import KubeREST

log = logging.getLogger("astrago.testbed")


class Informer:
    def __init__(self, name: str, rest: KubeREST, api_version: str, kind: str,
                 handle: Callable[[str, dict], None], **params):
        self.name = name
        self.rest = rest
        self.api_version = api_version
        self.kind = kind
        self.handle = handle
        self.params = params
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"informer-{name}", daemon=True)

    def start(self) -> "Informer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _dispatch(self, event_type: str, obj: dict) -> None:
        try:
            self.handle(event_type, obj)
        except Exception:
            self.errors.append(traceback.format_exc())
            log.exception("%s: handling %s failed", self.name, event_type)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listed = self.rest.list(self.api_version, self.kind, **self.params)
                version = listed["metadata"]["resourceVersion"]
                for item in listed["items"]:
                    self._dispatch("SYNC", item)
                while not self._stop.is_set():
                    path = self.rest.list_path(self.api_version, self.kind)
                    for event in self.rest.watch(path, version, timeout_seconds=30, stop=self._stop, **self.params):
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            raise RuntimeError(f"watch error: {obj.get('message')}")
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if event.get("type") != "BOOKMARK":
                            self._dispatch(event["type"], obj)
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.info("%s: listing again after %s", self.name, exc)
                time.sleep(0.5)
