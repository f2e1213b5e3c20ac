"""Pydantic models of the org repo's files, and the resolved per-Anima spec.

Raw file models (``OrgFile``, ``AnimaFile``, ``PermissionsFrontmatter``)
mirror what people write and reject unknown keys. :class:`AnimaSpec` is the
resolved result (org defaults applied, Markdown loaded, org chart placed)
that ``plan`` compares and ``apply`` hands to the runtime.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr

from orgctl.desired.roles import ROLES

# ---------------------------------------------------------------- value types

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: Any) -> int:
    """Seconds from an int (seconds) or a string like ``"90s"``, ``"5m"``, ``"1h30m"``.

    Raises ValueError for anything else, or for a duration under 1 second.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m or 1h, not a boolean")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and value.strip() and (m := _DURATION.match(value.strip())):
        h, mi, s = (int(g) if g else 0 for g in m.groups())
        seconds = h * 3600 + mi * 60 + s
    else:
        raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
    if seconds < 1:
        raise ValueError("a duration must be at least 1s")
    return seconds


def _parse_clock(text: str) -> time | None:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not m:
        return None
    h, mi = int(m.group(1)), int(m.group(2))
    if h == 24 and mi == 0:
        return time.max
    if h > 23 or mi > 59:
        return None
    return time(h, mi)


def parse_active_hours(value: Any) -> str:
    """Normalise active hours to ``"HH:MM-HH:MM"`` (end may be ``24:00``; may wrap midnight).

    ``"always"`` means all day. Raises ValueError when malformed or empty
    (start equal to end).
    """
    if not isinstance(value, str):
        raise ValueError(f"expected a range like \"09:00-18:00\" or \"always\", got {value!r}")
    text = value.strip()
    if text == "always":
        return "always"
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"expected a range like \"09:00-18:00\", got {value!r}")
    start, end = (_parse_clock(p) for p in parts)
    if start is None or end is None or start == time.max:
        raise ValueError(f"invalid clock time in {value!r} (use HH:MM, 00:00 to 24:00)")
    if start == end:
        raise ValueError(f"active hours {value!r} are empty (start equals end); use \"always\"")
    return f"{parts[0].strip().zfill(5)}-{parts[1].strip().zfill(5)}"


def parse_timezone(value: Any) -> str:
    """Check an IANA time zone name (``"Europe/Berlin"``). Raises ValueError if unknown."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected an IANA time zone name, got {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {value!r}") from e
    return value


def parse_role(value: Any) -> str:
    if not isinstance(value, str) or value not in ROLES:
        raise ValueError(f"unknown role {value!r}; known roles: {', '.join(sorted(ROLES))}")
    return value


EMBEDDED_MODELS = ("local/smollm2",)
"""Models served by orgctl itself (see orgctl.llm.servers); anything else goes through LiteLLM."""

def parse_model(value: Any) -> str:
    """A LiteLLM-style model string ``provider/model`` (``local/smollm2`` is the embedded default)."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+/\S+", value):
        raise ValueError(f"expected a model string like local/smollm2 or anthropic/claude-sonnet-4-5, got {value!r}")
    if value.startswith("local/") and value not in EMBEDDED_MODELS:
        raise ValueError(f"unknown embedded model {value!r}; embedded models: {', '.join(EMBEDDED_MODELS)} "
                         "(use a LiteLLM string such as ollama/llama3 for other local servers)")
    return value


Duration = Annotated[int, BeforeValidator(parse_duration)]
ActiveHours = Annotated[str, BeforeValidator(parse_active_hours)]
TimeZone = Annotated[str, BeforeValidator(parse_timezone)]
Role = Annotated[str, BeforeValidator(parse_role)]
Model = Annotated[str, BeforeValidator(parse_model)]

# ---------------------------------------------------------------- file models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrgDefaults(_Strict):
    """``defaults:`` in ``org.yaml``; every Anima inherits these unless it sets its own."""

    model: Model = "local/smollm2"
    heartbeat_interval: Duration = 1800
    active_hours: ActiveHours = "always"
    timezone: TimeZone = "UTC"


class OrgFile(_Strict):
    """``org.yaml`` at the repo root."""

    name: StrictStr = Field(min_length=1)
    description: StrictStr = ""
    defaults: OrgDefaults = OrgDefaults()


class AnimaFile(_Strict):
    """``animas/<name>/anima.yaml``. The folder name is the Anima's name.

    ``supervisor`` is the one field that defines the org chart (None at the top).
    """

    role: Role
    supervisor: StrictStr | None = None
    model: Model | None = None
    heartbeat_interval: Duration | None = None
    active_hours: ActiveHours | None = None
    timezone: TimeZone | None = None
    enabled: StrictBool = True


class PermissionsFrontmatter(_Strict):
    """Frontmatter of ``permissions.md``. Fail-closed: what is not listed is denied.

    Parsed and validated now; enforced by the tool layer (ROADMAP 3).
    """

    tools: list[StrictStr] = []
    commands: list[StrictStr] = []
    file_roots: list[StrictStr] = []


# ---------------------------------------------------------------- resolved spec


class CronTask(_Strict):
    """One ``## Title`` section of ``cron.md``.

    ``schedule`` is a 5-field cron expression (minute hour day-of-month month
    day-of-week; day-of-week 0 or 7 = Sunday, as in POSIX cron).
    """

    title: str
    schedule: str
    type: Literal["llm", "command"] = "llm"
    command: str | None = None
    body: str = ""
    line: int = 0


class OrgPlacement(_Strict):
    """Where an Anima sits in the org chart, derived from every ``supervisor:`` field."""

    supervisor: str | None
    reports: list[str]
    peers: list[str]
    chain: list[str] = Field(description="supervisors from the direct one up to the top")


RESTART_FIELDS = ("role", "model", "heartbeat_interval", "active_hours", "timezone")
"""Fields the Anima process is started with: changing one restarts it (``-/+``)."""

FILE_FIELDS = ("identity.md", "injection.md", "permissions.md", "cron.md")
"""Files the Anima re-reads on reload: changing one is a change in place (``~``)."""


class AnimaSpec(_Strict):
    """The resolved desired state of one Anima: what ``apply`` snapshots for the runtime."""

    name: str
    role: str
    model: str
    heartbeat_interval: int = Field(description="seconds")
    active_hours: str
    timezone: str
    enabled: bool
    identity: str
    injection: str
    permissions: PermissionsFrontmatter
    permissions_text: str
    cron: list[CronTask]
    org: OrgPlacement
    files: dict[str, str] = Field(description="sha256 of each spec file's text, by file name")

    def config(self) -> dict[str, Any]:
        """The restart-relevant settings, by field name."""
        return {f: getattr(self, f) for f in RESTART_FIELDS}

    def spec_hash(self) -> str:
        """sha256 over the whole resolved spec (canonical JSON); equal specs hash equal."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()


class OrgSpec(_Strict):
    """The whole desired state at one source (work tree or revision)."""

    name: str
    defaults: OrgDefaults
    revision: str | None = Field(description="commit sha, None for the work tree")
    animas: dict[str, AnimaSpec]

    def enabled(self) -> list[AnimaSpec]:
        return [a for a in self.animas.values() if a.enabled]
