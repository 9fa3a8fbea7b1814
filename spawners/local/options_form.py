"""The options form: the slices a user may choose, with cost, availability and quota, and the
environments their teams allow (pure HTML)."""
from __future__ import annotations

import html


def _units(value: float) -> str:
    return f"{value:.2f} GPU units"


def render_environments(data: dict | None) -> str:
    """The environment choice (`GET users/<name>/environments` of the service); nothing when only
    the default is there to choose."""
    environments = (data or {}).get("environments") or []
    if len(environments) < 2:
        return ""
    default = (data or {}).get("default") or environments[0]["name"]
    rows = []
    for env in environments:
        name = env["name"]
        checked = " checked" if name == default else ""
        what = env.get("description") or ("" if env.get("builtin") else " ".join(env.get("packages") or []))
        rows.append(f'<label class="astrago-environment" data-environment="{html.escape(name)}">'
                    f'<input type="radio" name="environment" value="{html.escape(name)}"{checked}> '
                    f'<strong>{html.escape(name)}</strong>'
                    + (f' <span>({html.escape(what)})</span>' if what else "") + "</label>")
    return ('<fieldset id="astrago-environments"><legend>Choose the environment</legend>' + "".join(rows)
            + "</fieldset><style>.astrago-environment{display:block;padding:6px 0}</style>")


def render_options_form(data: dict, environments: dict | None = None) -> str:
    offers = data.get("offers", [])
    remaining = data.get("remaining", {})
    note = data.get("inventory_note", "")
    rows, checked_done = [], False
    for offer in offers:
        name = offer["slice"]
        free = offer.get("free")
        blocked_quota = not offer.get("within_quota", True)
        full = free is not None and free <= 0
        # a full slice can still be chosen: the spawn waits in the queue
        disabled = blocked_quota
        checked = ""
        if not disabled and not checked_done:
            checked, checked_done = " checked", True
        label = {"cpu": "CPU only", "mig": f"MIG {name}", "mps": f"MPS share {name[4:]}%"}.get(
            offer["kind"], f"{name[4:]} whole GPU{'s' if name != 'gpu-1' else ''}")
        bits = [_units(offer.get("gpu_units", 0))]
        if offer.get("memory_gib"):
            bits.append(f"{offer['memory_gib']:g} GB GPU memory")
        if free is not None:
            bits.append(f"{free} free now" if free > 0 else "none free now: you will wait in the queue")
        extra = []
        if offer.get("note"):
            extra.append(html.escape(offer["note"]))
        if blocked_quota:
            extra.append(f'<span class="astrago-quota">{html.escape(offer.get("quota_note", "over your quota"))}</span>')
        rows.append(
            f'<label class="astrago-slice{" disabled" if disabled else ""}{" full" if full else ""}" '
            f'data-slice="{html.escape(name)}"><input type="radio" name="slice" value="{html.escape(name)}"'
            f'{checked}{" disabled" if disabled else ""}> <strong>{html.escape(label)}</strong> '
            f'<span>({html.escape(", ".join(bits))})</span>'
            + (f'<div class="astrago-note">{" ".join(extra)}</div>' if extra else "") + "</label>")
    left = remaining.get("gpu_units")
    quota_line = ("Your GPU quota: unlimited." if left is None else
                  f"Your GPU quota: {left:.2f} GPU units left.")
    simulated = "simulated" in note.lower()
    return (
        f'<div class="alert {"alert-warning" if simulated else "alert-info"}" id="astrago-inventory-note">'
        f'{html.escape(note)}</div>'
        f'<p id="astrago-quota-left">{html.escape(quota_line)}</p>'
        '<fieldset id="astrago-slices"><legend>Choose where your JupyterLab runs</legend>'
        + "".join(rows) + "</fieldset>"
        + render_environments(environments) +
        "<style>.astrago-slice{display:block;padding:6px 0}.astrago-slice.disabled{opacity:.5}"
        ".astrago-note{margin-left:22px;font-size:90%;color:#666}.astrago-quota{color:#a61b1b}</style>"
    )
