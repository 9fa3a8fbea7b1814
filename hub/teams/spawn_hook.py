"""The hub side of "a member's server starts": ask the service to reconcile the user's teams.

Set as `LocalGPUSpawner.account_ready_hook` by the embedded configuration: it runs after the
spawner has made (or found) the user's system account and before the server's process starts,
so the process starts already in its teams' POSIX groups, with `~/teams/<team>` in its home.
A failure is logged and the server starts anyway (without fresh team links).
"""
from __future__ import annotations

import json

from tornado.httpclient import AsyncHTTPClient, HTTPRequest


async def sync_teams_before_start(spawner, account) -> None:
    url = spawner.service_api_url.rstrip("/") + "/teams/sync"
    req = HTTPRequest(url, method="POST", body=json.dumps({"user": spawner.user.name}), request_timeout=60,
                      headers={"Authorization": f"token {spawner.service_api_token}",
                               "Content-Type": "application/json"})
    try:
        resp = await AsyncHTTPClient().fetch(req, raise_error=False)
    except OSError as exc:
        spawner.log.warning("teams of %s not reconciled before start: %s", spawner.user.name, exc)
        return
    if resp.code != 200:
        spawner.log.warning("teams of %s not reconciled before start: HTTP %s %s", spawner.user.name, resp.code,
                            (resp.body or b"")[:300])
