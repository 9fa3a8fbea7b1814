"""Run code in a real kernel of a user's server through the Jupyter REST and WebSocket API."""
from __future__ import annotations

import json
import time
import uuid

import requests
import websocket


def run_code(base_url: str, username: str, token: str, code: str, timeout: float = 60) -> dict:
    """Start a kernel, execute `code`, return {"stdout", "stderr", "status", "error"}; shut the kernel down."""
    server = f"{base_url}/user/{username}"
    h = {"Authorization": f"token {token}"}
    r = requests.post(f"{server}/api/kernels", json={"name": "python3"}, headers=h, timeout=60)
    assert r.status_code == 201, f"{r.status_code} {r.text}"
    kernel_id = r.json()["id"]
    ws_url = server.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": username, "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        return collect_reply(ws, msg_id, timeout)
    finally:
        ws.close()
        requests.delete(f"{server}/api/kernels/{kernel_id}", headers=h, timeout=30)


def collect_reply(ws, msg_id: str, timeout: float) -> dict:
    """What the kernel answered to execute request `msg_id` on channel websocket `ws`, until it is idle:
    {stdout, stderr, status, error}."""
    out = {"stdout": "", "stderr": "", "status": None, "error": None}
    deadline = time.monotonic() + timeout
    idle = False
    while time.monotonic() < deadline and not (idle and out["status"]):
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["header"]["msg_type"], msg["content"]
        if kind == "stream":
            out[content["name"]] += content["text"]
        elif kind == "error":
            out["error"] = f"{content['ename']}: {content['evalue']}"
        elif kind == "execute_reply":
            out["status"] = content["status"]
        elif kind == "status" and content.get("execution_state") == "idle":
            idle = True
    return out
