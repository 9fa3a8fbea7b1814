"""Which servers run in an environment: their `user_options` at the hub (the spawn page's choice)."""
from __future__ import annotations

PAGE = 200


def servers_in(users: list[dict], name: str) -> list[dict]:
    """Servers (running or starting) of these hub user models whose chosen environment is `name` (pure)."""
    found = []
    for user in users:
        for server_name, server in sorted((user.get("servers") or {}).items()):
            options = server.get("user_options") or {}
            if options.get("environment") == name and (server.get("ready") or server.get("pending")
                                                       or not server.get("stopped", False)):
                found.append({"user": user["name"], "server": server_name})
    return found


async def servers_using(hub_api, name: str) -> list[dict]:
    """`[{"user", "server"}]` of the hub's active servers that run in `name`; RuntimeError when the hub
    cannot say."""
    users, offset = [], 0
    while True:
        code, page = await hub_api("GET", f"/users?state=active&offset={offset}&limit={PAGE}")
        if code != 200 or not isinstance(page, list):
            raise RuntimeError(f"The hub did not list its running servers (HTTP {code}).")
        users += page
        if len(page) < PAGE:
            return servers_in(users, name)
        offset += PAGE
