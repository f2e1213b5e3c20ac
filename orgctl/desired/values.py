"""The value types of spec files: durations, active hours, time zones, roles and model strings.

Each is an ``Annotated`` type whose validator normalises what people write and whose JSON Schema says what
it accepts (for the schemas editors read, :mod:`orgctl.desired.schemas`). A schema cannot say everything
(start equal to end in active hours, which time zones exist): ``orgctl validate`` has the last word.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, GetJsonSchemaHandler, WithJsonSchema

from orgctl.desired.roles import ROLES

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


# Each value type carries the JSON Schema of what its validator accepts, for the schemas editors read
# (scripts/gen_schemas.py). A schema cannot say everything (start equal to end in active hours, which time
# zones exist, the org chart): ``orgctl validate`` has the last word.
_CLOCK, _END = "([01]?[0-9]|2[0-3]):[0-5][0-9]", "(([01]?[0-9]|2[0-3]):[0-5][0-9]|24:00)"


def _duration_schema(*, maximum: int | None = None) -> dict[str, Any]:
    seconds: dict[str, Any] = {"type": "integer", "minimum": 1} | ({"maximum": maximum} if maximum else {})
    return {"description": "seconds (90), or h, m, s parts in that order: 30s, 5m, 1h, 1h30m; at least 1s"
                           + (f"; integers at most {maximum}" if maximum else ""),
            "anyOf": [seconds, {"type": "string", "pattern": r"^\s*([0-9]+h)?([0-9]+m)?([0-9]+s)?\s*$",
                                "not": {"pattern": r"^\s*(0+h)?(0+m)?(0+s)?\s*$"}}]}


_ACTIVE_HOURS_SCHEMA: dict[str, Any] = {
    "description": '"always", or "HH:MM-HH:MM" in the time zone (end exclusive, may be 24:00; a range whose '
                   "end is before its start wraps midnight). Quote it: YAML reads some clock times as numbers",
    "type": "string",
    "pattern": rf"^\s*(always|{_CLOCK}\s*-\s*{_END})\s*$",
}
_TIMEZONE_SCHEMA: dict[str, Any] = {"description": "an IANA time zone name: UTC, Europe/Berlin, America/New_York",
                                    "type": "string", "minLength": 1}
ROLE_SCHEMA: dict[str, Any] = {"description": "the role: one line of the Anima's prompt", "enum": sorted(ROLES)}
_MODEL_SCHEMA: dict[str, Any] = {
    "description": "provider/model: local/smollm2 (the embedded model), or a LiteLLM model string such as "
                   "anthropic/claude-sonnet-4-5 or ollama/llama3",
    "anyOf": [{"enum": list(EMBEDDED_MODELS)},
              {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+/\S+$", "not": {"pattern": "^local/"}}],
}

Duration = Annotated[int, BeforeValidator(parse_duration), WithJsonSchema(_duration_schema())]
DayDuration = Annotated[int, BeforeValidator(parse_duration), Field(ge=1, le=86400),
                        WithJsonSchema(_duration_schema(maximum=86400))]
"""A duration of at most a day (the outbox keeps 24 h)."""
ActiveHours = Annotated[str, BeforeValidator(parse_active_hours), WithJsonSchema(_ACTIVE_HOURS_SCHEMA)]
TimeZone = Annotated[str, BeforeValidator(parse_timezone), WithJsonSchema(_TIMEZONE_SCHEMA)]
Role = Annotated[str, BeforeValidator(parse_role), WithJsonSchema(ROLE_SCHEMA)]
Model = Annotated[str, BeforeValidator(parse_model), WithJsonSchema(_MODEL_SCHEMA)]


class OrShorthand:
    """JSON Schema of a model that a before-validator also accepts in short forms: ``anyOf`` the short forms'
    schemas and the model's own."""

    def __init__(self, *shorthands: dict[str, Any]) -> None:
        self.shorthands = shorthands

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {"anyOf": [*self.shorthands, handler(schema)]}
