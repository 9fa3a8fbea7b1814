"""Jobs from Python: submit, list, follow and cancel (`ServiceClient().jobs` or `JobsClient()`).

Used by the `astrago job` CLI and the notebook magics; errors raise `AstraGoError` with the
service's sentence.
"""
from __future__ import annotations

import json
import math
from typing import Iterator

import requests

from .session import AstraGoError, ServiceSession, problem_of

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")


class JobsClient:
    def __init__(self, client: ServiceSession | None = None):
        self.client = client or ServiceSession()

    def submit(self, *, client_key: str | None = None, attempts: int = 5, **spec) -> dict:
        """POST api/jobs with the spec's fields (kind, input, code, command, parameters, slice, cpu,
        memory, name, env, priority, max_runtime, retries, workdir, replicas, distributed); returns the job.

        Every submission carries an idempotency key (`client_key`, made here when not given), so
        when the answer is lost (the service restarting, a dropped connection, a 502/503 from the
        proxy) the retry returns the job the first try made instead of a second one."""
        import time
        import uuid

        body = {k: v for k, v in spec.items() if v is not None}
        body["client_key"] = client_key or uuid.uuid4().hex
        for attempt in range(1, attempts + 1):
            try:
                return self.client.request("POST", "api/jobs", json=body, ok=(200, 201)).json()
            except AstraGoError as exc:
                if attempt == attempts or not _worth_retrying(exc):
                    raise
            time.sleep(min(0.5 * 2 ** (attempt - 1), 4.0))
        raise AssertionError("unreachable")

    def list(self, *, user: str | None = None, status: str | None = None, limit: int = 200) -> list[dict]:
        params = {"limit": limit}
        if user:
            params["user"] = user
        if status:
            params["status"] = status.upper()
        return self.client.get_json("api/jobs", params=params)["jobs"]

    def get(self, job_id: str) -> dict:
        return self.client.get_json(f"api/jobs/{_id(job_id)}")

    def cancel(self, job_id: str) -> dict:
        return self.client.request("POST", f"api/jobs/{_id(job_id)}/cancel").json()

    def log(self, job_id: str, offset: int = 0, replica: int = 0) -> tuple[str, int]:
        """(log text from `offset`, the offset to continue from); `replica`: another replica's log."""
        params = {"offset": offset, **({"replica": replica} if replica else {})}
        r = self.client.request("GET", f"api/jobs/{_id(job_id)}/log", params=params)
        return r.content.decode("utf-8", errors="replace"), int(r.headers.get("X-Log-Next-Offset", offset))

    def follow(self, job_id: str, offset: int = 0, *, timeout: float = 3600 * 24,
               replica: int = 0) -> Iterator[tuple[str, dict]]:
        """Server-sent events of a job: ("log", {"text", "offset", "attempt"}), ("status", job), and
        finally ("end", {"status", "exit_code", "reason", "outputs"}). Reconnects (resuming from the
        last offset) when the connection drops."""
        last_id = None
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            params = {} if last_id else {"offset": offset}
            if replica:
                params["replica"] = replica
            try:
                response = self.client.session.get(self.client.absolute(f"api/jobs/{_id(job_id)}/events"),
                                                   params=params, headers=headers, stream=True,
                                                   timeout=(30, timeout))
            except requests.ConnectionError as exc:
                raise AstraGoError(f"Cannot reach the AstraGo service at {self.client.url}: {exc}") from None
            if response.status_code != 200:
                raise problem_of(response)
            try:
                for event, data, event_id in _parse_sse(response.iter_lines(decode_unicode=True)):
                    if event_id:
                        last_id = event_id
                    yield event, data
                    if event == "end":
                        return
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                continue  # dropped: resume from the last event id
            finally:
                response.close()


def _worth_retrying(exc: AstraGoError) -> bool:
    """A failure that says nothing about the job (the service unreachable or restarting)."""
    return exc.status is None or exc.status in (502, 503, 504)


def _id(job_id: str) -> str:
    job_id = str(job_id).strip()
    if not job_id or "/" in job_id or "?" in job_id or "#" in job_id:
        raise AstraGoError(f"There is no job {job_id!r}: job ids look like 3f2a9c1b7d4e. "
                           "List your jobs with `astrago job list` (or %jobs in a notebook).")
    return job_id


def _parse_sse(lines) -> Iterator[tuple[str, dict, str | None]]:
    """(event, data as JSON, id) from server-sent event lines."""
    event, data, event_id = "message", [], None
    for line in lines:
        if line is None:
            continue
        if line == "":
            if data:
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    payload = {"text": "\n".join(data)}
                yield event, payload, event_id
            event, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


def follow_log(client, job_id: str, offset: int, write, replica: int = 0) -> dict | None:
    """Stream a job's log through `write` until it ends; returns the end event (None if the
    stream stopped first). Shared by `astrago job logs --follow` and `%job logs --follow`."""
    end = None
    for event, data in client.follow(job_id, offset, replica=replica):
        if event == "log":
            write(data["text"])
        elif event == "end":
            end = data
    return end


def ending(job_id: str, end: dict, output_line: str = "\nOutput: {}") -> str:
    """The sentence that closes a followed log: status, exit code, reason, outputs."""
    line = f"Job {job_id} {end['status'].lower().replace('_', ' ')}"
    if end.get("exit_code") not in (None, 0):
        line += f" (exit code {end['exit_code']})"
    if end["status"] != "COMPLETED" and end.get("reason"):
        line += f": {end['reason']}"
    return line + "." + "".join(output_line.format(o) for o in end.get("outputs") or [])


def describe(job: dict) -> str:
    """One line about a job for people."""
    where = job["slice"] if (job.get("replicas") or 1) == 1 else f"{job['replicas']} x {job['slice']}"
    text = f"Job {job['id']} ({job['name']}) on {where}: {job['status']}"
    if job.get("reason") and job["status"] not in ("COMPLETED",):
        text += f" — {job['reason']}"
    if job.get("exit_code") is not None and job["status"] != "COMPLETED":
        text += f" (exit code {job['exit_code']})"
    return text


def table(jobs: list[dict], *, owner: bool = False) -> str:
    """Jobs as a plain-text table."""
    cols = ["ID", "NAME", "STATUS", "SLICE", "CREATED"] + (["OWNER"] if owner else []) + ["REASON"]
    rows = []
    for j in jobs:
        row = [j["id"], j["name"][:30], j["status"], j["slice"], (j.get("created_at") or "")[:19].replace("T", " ")]
        if owner:
            row.append(j["owner"])
        row.append((j.get("reason") or "")[:60])
        rows.append(row)
    if not rows:
        return "No jobs."
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in [cols, *rows])


def _plain_json(value, depth: int = 0) -> bool:
    """A value a job parameter may hold: JSON without NaN/Infinity, nested at most 10 deep."""
    if depth > 10:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_plain_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_plain_json(v, depth + 1) for v in value.values())
    return True


def parse_cli_value(text: str):
    """A parameter value typed by a person (`-p lr 0.1`): JSON when it parses (numbers, true,
    null, lists), Python's True/False/None, else the text itself."""
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if _plain_json(value) else text


def distributed_fields(replicas: int | None, kind: str | None) -> dict:
    """The spec's `replicas` and `distributed` from `--replicas N --kind mpi|pytorch` (pure); the
    service checks them (a kind without 2 or more replicas is refused there, in its words)."""
    fields = {}
    if replicas is not None:
        fields["replicas"] = replicas
    if kind is not None:
        fields["distributed"] = {"framework": kind}
    return fields


def parse_params(pairs) -> dict:
    """['lr=0.1', 'epochs=3'] or [('lr', '0.1')] -> {'lr': 0.1, 'epochs': 3} (values as JSON when they parse)."""
    out = {}
    for pair in pairs or []:
        if isinstance(pair, (list, tuple)):
            key, value = pair
        else:
            key, sep, value = str(pair).partition("=")
            if not sep:
                raise AstraGoError(f"A parameter is NAME=VALUE (like lr=0.1), not {pair!r}.")
        key = key.strip()
        if not key.isidentifier():
            raise AstraGoError(f"Parameter name {key!r} is not a valid Python name.")
        out[key] = parse_cli_value(value)
    return out
