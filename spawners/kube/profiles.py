"""What a user may choose on the spawn page, as KubeSpawner's `profile_list` (pure).

Three things decide it:

- the slice catalogue of this cluster, as the AstraGo service offers it
  (`GET users/<name>/offers`: every slice that exists, its GPU units, memory, how many
  are free now, and whether the user's quota still allows it);
- the user's groups: `group_slices` maps a JupyterHub group (or `*`, everyone) to the
  slices it may use; empty means no restriction beyond quota;
- admission: a slice over quota is left out of the list (the service would refuse it);
  a slice that is merely full stays (the spawn waits in the queue).

`slice_choices` evaluates every offered slice once, with the reason it cannot be chosen;
`profile_list` renders the selectable ones; `choose` re-checks what a spawn asked for
(the form sends `{"profile": slug}`, the REST API may send `{"slice": name}` or anything
at all) and refuses in plain words.
"""
from __future__ import annotations

import copy
import html
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .. import slices

__all__ = ["OptionsRefused", "SliceChoice", "allowed_by_groups", "choose", "environment_option", "profile_list",
           "slice_choices", "slug_for"]

MPS_WARNING = "shares a GPU: a fatal error in one program stops every program on that GPU"

#: keys a spawn request may carry (the form's and the REST API's spelling); `environment` is
#: the environment option of every profile (KubeSpawner's `profile-option-<slug>--environment`)
KNOWN_OPTIONS = frozenset({"profile", "slice", "environment"})
ENVIRONMENT_OPTION = "environment"


class OptionsRefused(Exception):
    """A spawn asked for something it may not have; `kind` is a problem type, the message is for people."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class SliceChoice:
    """One slice as the spawn page sees it. `refusal` is None when it can be chosen."""

    slice: str
    kind: str
    slug: str
    display_name: str
    description: str
    model: str | None = None
    refusal: str | None = None
    refusal_kind: str | None = None

    @property
    def selectable(self) -> bool:
        return self.refusal is None


def slug_for(slice_name: str) -> str:
    """A profile slug for a slice: `1g.10gb+me` -> `1g-10gb-me` (letters, digits and dashes)."""
    return slice_name.replace(".", "-").replace("+", "-")


def allowed_by_groups(slice_name: str, groups: Iterable[str], group_slices: Mapping[str, Iterable[str]]) -> bool:
    """Whether a group (or `*`) of the user may use `slice_name`; `cpu` is always allowed."""
    if not group_slices or slice_name == "cpu":
        return True
    allowed: set[str] = set()
    for group in [*groups, "*"]:
        allowed.update(group_slices.get(group, ()))
    return "*" in allowed or slice_name in allowed


def _display_name(offer: Mapping[str, Any]) -> str:
    name, kind = offer["slice"], offer["kind"]
    if kind == "cpu":
        return "CPU only"
    if kind == "mig":
        return f"MIG {name}"
    if kind == "mps":
        return f"MPS share {name[len('mps-'):]}%"
    count = int(name[len("gpu-"):])
    return f"{count} whole GPU{'s' if count > 1 else ''}"


def _description(offer: Mapping[str, Any]) -> str:
    if offer["kind"] == "cpu":
        return "No GPU."
    bits = [f"{offer.get('gpu_units', 0):.2f} GPU units"]
    if offer.get("memory_gib"):
        bits.append(f"{offer['memory_gib']:g} GB GPU memory")
    if offer.get("model"):
        bits.append(offer["model"])
    free = offer.get("free")
    if free is not None:
        bits.append(f"{free} free now" if free > 0 else "none free now: you will wait in the queue")
    text = ", ".join(bits) + "."
    if offer["kind"] == "mps":
        text += f" Note: {MPS_WARNING}."
    return text


def slice_choices(offers: Mapping[str, Any], groups: Iterable[str],
                  group_slices: Mapping[str, Iterable[str]] | None = None) -> list[SliceChoice]:
    """Every slice the service offers, with why it cannot be chosen (None: it can)."""
    groups = sorted(groups)
    choices = []
    for offer in offers.get("offers", []):
        name = offer["slice"]
        refusal = refusal_kind = None
        if not allowed_by_groups(name, groups, group_slices or {}):
            refusal_kind = "forbidden"
            refusal = (f"Your groups ({', '.join(groups) or 'none'}) may not use {name}."
                       if groups else f"Users without a group may not use {name}.")
        elif not offer.get("within_quota", True):
            refusal_kind = "quota-exceeded"
            refusal = offer.get("quota_note") or f"{name} is over your quota."
        choices.append(SliceChoice(slice=name, kind=offer["kind"], slug=slug_for(name),
                                   display_name=_display_name(offer), description=_description(offer),
                                   model=offer.get("model"), refusal=refusal, refusal_kind=refusal_kind))
    return choices


def environment_option(environments: Mapping[str, Any] | None) -> dict | None:
    """KubeSpawner's `profile_options` entry offering the environments the user's teams allow
    (`GET users/<name>/environments` of the service); None when there is nothing to choose.
    The image is applied by GPUKubeSpawner after the service re-checks the choice."""
    found = list((environments or {}).get("environments") or [])
    if len(found) < 2:
        return None
    default = (environments or {}).get("default") or found[0]["name"]
    choices = {}
    for env in found:
        what = env.get("description") or env.get("image") or ""
        label = f"{env['name']}: {what}" if what else env["name"]
        choices[env["name"]] = {"display_name": html.escape(label), "default": env["name"] == default}
    return {"display_name": "Environment", "choices": choices}


def profile_list(choices: Iterable[SliceChoice], environments: Mapping[str, Any] | None = None) -> list[dict]:
    """KubeSpawner profiles for the selectable choices; the first GPU slice is the default. With
    more than one environment to choose, every profile offers them (`profile_options`).

    KubeSpawner's form renders `description` without escaping, so it is escaped here.
    """
    profiles = [{"display_name": c.display_name, "slug": c.slug, "description": html.escape(c.description)}
                for c in choices if c.selectable]
    default = next((p for p in profiles if p["slug"] != "cpu"), profiles[0] if profiles else None)
    if default is not None:
        default["default"] = True
    option = environment_option(environments)
    if option is not None:
        for profile in profiles:
            profile["profile_options"] = {ENVIRONMENT_OPTION: copy.deepcopy(option)}
    return profiles


def choose(user_options: Mapping[str, Any] | None, choices: list[SliceChoice]) -> SliceChoice:
    """The choice a spawn asked for, re-checked on the server; raises OptionsRefused.

    No options (a bare REST spawn) means the default profile. A REST spawn may name the
    slice (`{"slice": "1g.10gb"}`) or the profile (`{"profile": "1g-10gb"}`), not both.
    """
    options = dict(user_options or {})
    unknown = sorted(set(options) - KNOWN_OPTIONS)
    if unknown:
        raise OptionsRefused("invalid-request", f"Unknown spawn options: {', '.join(unknown)}. "
                             'Send {"slice": "<slice name>"} or {"profile": "<profile slug>"}.')
    if options.get("slice") and options.get("profile"):
        raise OptionsRefused("invalid-request", 'Send either "slice" or "profile", not both.')
    selectable = [c for c in choices if c.selectable]
    wanted = options.get("slice") or options.get("profile")
    if not wanted:
        if not selectable:
            raise OptionsRefused("quota-exceeded", "Nothing is left for you to start: every slice is over "
                                 "your quota or not allowed for your groups.")
        return next((c for c in selectable if c.slug != "cpu"), selectable[0])
    if not isinstance(wanted, str):
        raise OptionsRefused("invalid-request", "The slice or profile must be a name, e.g. 1g.10gb or cpu.")
    by_slice = "slice" in options and bool(options["slice"])
    found = next((c for c in choices if (c.slice if by_slice else c.slug) == wanted), None)
    if found is None:
        if by_slice:
            try:
                slices.parse_slice(wanted)
            except slices.InvalidSlice as exc:
                raise OptionsRefused("invalid-slice", str(exc)) from None
        names = ", ".join(c.slice for c in selectable) or "nothing"
        raise OptionsRefused("capacity-unavailable" if by_slice else "invalid-request",
                             f"{wanted!r} is not offered in this cluster; you may choose: {names}.")
    if not found.selectable:
        raise OptionsRefused(found.refusal_kind, found.refusal)
    return found
