"""Pydantic models of the org repo's files, and the resolved per-Anima spec.

Raw file models (``OrgFile``, ``AnimaFile``, ``PermissionsFrontmatter``)
mirror what people write and reject unknown keys. :class:`AnimaSpec` is the
resolved result (org defaults applied, Markdown loaded, org chart placed)
that ``plan`` compares and ``apply`` hands to the runtime.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from orgctl.desired.hashing import spec_digest
from orgctl.desired.permissions import PermissionsFrontmatter
from orgctl.desired.values import (  # noqa: F401  (re-exported: callers import the value types from here)
    EMBEDDED_MODELS,
    ROLE_SCHEMA,
    ActiveHours,
    DayDuration,
    Duration,
    Model,
    OrShorthand,
    Role,
    TimeZone,
    parse_active_hours,
    parse_duration,
    parse_model,
    parse_role,
    parse_timezone,
)
from orgctl.desired.workflows import WorkflowSpec
from orgctl.errors import Diagnostic

# ---------------------------------------------------------------- file models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MessageLimits(_Strict):
    """Loop protection for one Anima's outgoing DMs (AnimaWorks' seed defaults).

    ``per_hour``/``per_day``: accepted DMs in the last 60 min / 24 h.
    ``pair_depth``: DMs between one pair within ``pair_window`` seconds.
    ``max_hops``: how many Animas a chain of messages may pass through.
    """

    per_hour: int = Field(default=30, ge=0)
    per_day: int = Field(default=100, ge=0)
    pair_depth: int = Field(default=6, ge=1)
    pair_window: DayDuration = 600
    max_hops: int = Field(default=4, ge=1)


class MessageLimitsOverride(_Strict):
    """Any subset of :class:`MessageLimits`, set per role in ``org.yaml`` or per Anima in ``anima.yaml``."""

    per_hour: int | None = Field(default=None, ge=0)
    per_day: int | None = Field(default=None, ge=0)
    pair_depth: int | None = Field(default=None, ge=1)
    pair_window: DayDuration | None = None
    max_hops: int | None = Field(default=None, ge=1)


class MessagingConfig(_Strict):
    """``messaging:`` in ``org.yaml``: limits for every Anima, then per role."""

    limits: MessageLimits = MessageLimits()
    roles: dict[Role, MessageLimitsOverride] = Field(default={}, json_schema_extra={"propertyNames": ROLE_SCHEMA})


class BudgetLimits(_Strict):
    """Limits for one scope; ``None`` means unlimited, 0 forbids calls. Tokens are prompt + completion tokens.

    At ``soft_fraction`` (0 < x <= 1) of any limit the soft limit trips
    (warn, slow down, prefer cheap models); at 100 % the hard limit trips (stop calling).
    """

    tokens_per_day: int | None = Field(default=None, ge=0)
    tokens_per_month: int | None = Field(default=None, ge=0)
    cost_per_day_usd: float | None = Field(default=None, ge=0)
    cost_per_month_usd: float | None = Field(default=None, ge=0)
    soft_fraction: float = Field(default=0.8, gt=0, le=1)


class Budgets(_Strict):
    """``budgets:`` in ``org.yaml``.

    ``org`` limits the whole org's usage (all Animas together); ``per_anima``
    is the default limit for each Anima on its own.
    """

    org: BudgetLimits = BudgetLimits()
    per_anima: BudgetLimits = BudgetLimits()


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _cron(value: Any) -> Any:
    """A 5-field cron expression, checked with croniter (the same as cron.md's schedules)."""
    from croniter import croniter

    if isinstance(value, str) and not croniter.is_valid(value):
        raise ValueError(f"not a 5-field cron expression: {value!r}")
    return value


CronExpression = Annotated[StrictStr, BeforeValidator(_cron)]


class MemorySchedule(_Strict):
    """When the memory passes run on their own, as cron expressions in the org's time zone."""

    consolidate: CronExpression = Field(default="0 2 * * *", description="daily: episodes -> knowledge, procedures")
    compress: CronExpression = Field(default="0 3 * * 0", description="weekly: knowledge notes merged and compressed")
    forget: CronExpression = Field(default="0 4 1 * *", description="monthly: downscale, archive, forget")


class ForgettingConfig(_Strict):
    """The thresholds of the three forgetting stages (days without a recall, and recalls counted)."""

    downscale_after_days: int = Field(default=90, ge=1, description="unused this long with fewer than min_uses "
                                                                     "recalls: marked downscaled")
    min_uses: int = Field(default=3, ge=0)
    archive_after_days: int = Field(default=180, ge=1, description="downscaled and unused this long: moved "
                                                                    "to archive/")
    forget_after_days: int = Field(default=365, ge=1, description="archived and unused this long: removed "
                                                                   "(still in git history)")
    protect: list[Literal["knowledge", "procedures"]] = Field(default=["procedures"],
                                                              description="note kinds never forgotten")


class MemoryConfig(_Strict):
    """``memory:`` in org.yaml: the memory passes' schedules and thresholds, and commit hooks."""

    hooks: StrictBool = Field(default=True, description="run the repo's pre-commit and commit-msg hooks on "
                                                        "memory commits")
    schedule: MemorySchedule = MemorySchedule()
    forgetting: ForgettingConfig = ForgettingConfig()


def _sandbox(value: Any) -> Any:
    """``sandbox: off`` (YAML reads it as false) and ``sandbox: on`` are shorthands for ``{mode: ...}``."""
    if value is False or value == "off":
        return {"mode": "off"}
    if value is True or value == "on":
        return {"mode": "on"}
    return value


class SandboxLimits(_Strict):
    """``sandbox.limits:`` in org.yaml: what one command may use before the kernel stops it."""

    cpu_seconds: StrictInt = Field(default=120, ge=1, description="CPU time per process (RLIMIT_CPU), seconds")
    memory_mb: StrictInt = Field(default=2048, ge=64, description="address space per process (RLIMIT_AS), MiB")
    open_files: StrictInt = Field(default=256, ge=16, description="open file descriptors per process "
                                                                  "(RLIMIT_NOFILE)")
    processes: StrictInt = Field(default=128, ge=4, description="processes and threads of the whole command "
                                                                "(a pids cgroup's pids.max; RLIMIT_NPROC when "
                                                                "orgctl does not run as root)")
    file_size_mb: StrictInt = Field(default=1024, ge=1, description="largest file a process may write "
                                                                    "(RLIMIT_FSIZE), MiB")
    tmp_mb: StrictInt = Field(default=256, ge=1, description="size of the private /tmp (a tmpfs), MiB")
    timeout_seconds: StrictInt = Field(default=30, ge=1, description="wall-clock time of the whole command; at "
                                                                     "the limit every process in it is killed")


class SandboxConfig(_Strict):
    """``sandbox:`` in org.yaml: how every process an Anima starts is confined (docs/sandbox.md).

    ``mode: on`` (the default) confines each command with bubblewrap, rlimits and a pids cgroup, and
    refuses commands where that is not possible (fail closed). ``mode: off`` runs them unconfined:
    ``validate`` warns and ``status`` shows it. ``read_only`` adds absolute paths (tool installations)
    that commands may read, beside the system directories and the directories on ``PATH``.
    """

    mode: Literal["on", "off"] = "on"
    limits: SandboxLimits = SandboxLimits()
    read_only: list[StrictStr] = Field(default=[], description="extra absolute paths commands may read",
                                       json_schema_extra={"items": {"type": "string", "pattern": "^/"}})

    @model_validator(mode="after")
    def _absolute(self) -> SandboxConfig:
        for path in self.read_only:
            if not path.startswith("/") or "\x00" in path:
                raise ValueError(f"read_only: {path!r} is not an absolute path")
        return self


Sandbox = Annotated[SandboxConfig, BeforeValidator(_sandbox),
                    OrShorthand({"type": "boolean"}, {"enum": ["on", "off"]})]


class Skill(_Strict):
    """A declared skill: ``animas/<name>/skills/<skill>.md`` (frontmatter ``name``, ``description``; the body
    is the full skill, loaded when the Anima asks for it). Skills are spec: people write them."""

    name: str
    description: str
    body: str
    file: str


_CHANNEL_NEEDS: list[Any] = [  # what HumanChannel._check requires of each type, for the JSON Schema
    {"if": {"required": ["type"], "properties": {"type": {"enum": ["webhook", "ntfy"]}}},
     "then": {"required": ["url"]}},
    {"if": {"required": ["type"], "properties": {"type": {"const": "slack"}}},
     "then": {"required": ["channel", "token_env"], "properties": {"channel": {"minLength": 1}}}},
]


class HumanChannel(_Strict):
    """One way to reach a human, declared in org.yaml under ``notifications:`` (a list).

    ``url``: webhook -- the POST URL; ntfy -- server and topic, e.g.
    ``https://ntfy.sh/acme-alerts``; slack -- optional API base (default
    ``https://slack.com/api``). ``channel``: the Slack channel id or name
    (required for slack). ``token_env``: the NAME of the environment variable
    holding a token (required for slack, an optional bearer token for ntfy and
    webhook). Raises pydantic's ``ValidationError`` when a required field is
    missing, a URL is not http(s), or ``token_env`` is not a variable name;
    inputs are hidden in its message because a URL may carry a secret.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True,  # a URL may hold a secret
                              json_schema_extra={"allOf": _CHANNEL_NEEDS})

    type: Literal["webhook", "ntfy", "slack"]
    url: StrictStr | None = Field(default=None, json_schema_extra={
        "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#]+([/?#]\S*)?$"})
    channel: StrictStr | None = None
    token_env: StrictStr | None = Field(default=None, description="the NAME of the environment variable that "
                                        "holds the token", json_schema_extra={"pattern": _ENV_NAME.pattern})

    @model_validator(mode="after")
    def _check(self) -> HumanChannel:
        if self.type in ("webhook", "ntfy") and not self.url:
            raise ValueError(f"a {self.type} channel needs `url`")
        if self.url is not None:
            try:
                parts = urllib.parse.urlsplit(self.url)
                _ = parts.port  # raises ValueError when out of range
            except ValueError:
                parts = urllib.parse.urlsplit("")
            if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in self.url):
                raise ValueError(f"`url` of a {self.type} channel must be an http:// or https:// URL")
        if self.type == "slack" and not self.channel:
            raise ValueError("a slack channel needs `channel` (a channel id or name)")
        if self.type == "slack" and not self.token_env:
            raise ValueError("a slack channel needs `token_env` (the environment variable holding the bot token)")
        if self.token_env is not None and not _ENV_NAME.match(self.token_env):
            raise ValueError("`token_env` must be the NAME of an environment variable (e.g. SLACK_BOT_TOKEN), "
                             "not the token itself")
        return self

    def describe(self) -> str:
        """A label for logs and :attr:`Delivery.channel`, free of secrets.

        A webhook shows only its origin, since webhook paths often embed a
        secret; ntfy shows the topic URL; slack shows the channel.
        """
        if self.type == "slack":
            return f"slack {self.channel}"
        parts = urllib.parse.urlsplit(self.url or "")
        origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # never the user:password part
        if self.type == "webhook":
            return f"webhook {origin}"
        return f"ntfy {origin}{parts.path}"


DeletionPolicy = Literal["archive", "delete", "orphan"]
"""What retiring an Anima (removing it from the repo) does, as Kubernetes' propagation policies:
``archive`` (default) stops it and copies its memory to the state dir's archive; ``delete`` stops it and
removes its memory from the work tree (git history keeps what was committed); ``orphan`` stops managing
it and leaves its process and memory as they are."""


class OrgDefaults(_Strict):
    """``defaults:`` in ``org.yaml``; every Anima inherits these unless it sets its own."""

    model: Model = "local/smollm2"
    background_model: Model | None = None
    heartbeat_interval: Duration = 1800
    active_hours: ActiveHours = "always"
    timezone: TimeZone = "UTC"
    deletion_policy: DeletionPolicy = "archive"


SCHEMA_VERSION = 2
"""The newest ``schema_version`` of ``org.yaml`` (and the spec files it governs) this orgctl reads."""


class OrgFile(_Strict):
    """``org.yaml`` at the repo root."""

    schema_version: StrictInt | None = Field(default=None, ge=1, description="the spec format this repo is "
                                             f"written in; this orgctl reads up to {SCHEMA_VERSION}; "
                                             "missing: read as 1")
    name: StrictStr = Field(min_length=1, description="the org's name, shown in plan output")
    description: StrictStr = ""
    defaults: OrgDefaults = OrgDefaults()
    messaging: MessagingConfig = MessagingConfig()
    notifications: list[HumanChannel] = []
    board_channels: list[StrictStr] = ["general", "ops"]
    budgets: Budgets = Budgets()
    memory: MemoryConfig = MemoryConfig()
    sandbox: Sandbox = Field(default=SandboxConfig(), description="how commands are confined: on (the default), "
                             "off, or a mapping of mode, limits and read_only (docs/sandbox.md)")
    runtime: Literal["controller", "tick"] = Field(
        default="controller", description="how the org runs: a long-lived `orgctl controller` (and supervisor), "
                                          "or `orgctl tick` passes on CI runners; the other mode refuses")
    shards: StrictInt = Field(default=1, ge=1, le=256, description="tick mode: how many runners of a workflow "
                                                                   "matrix share the Animas (`orgctl tick --shard`)")


class AnimaFile(_Strict):
    """``animas/<name>/anima.yaml``. The folder name is the Anima's name.

    ``supervisor`` is the one field that defines the org chart (None at the top).
    """

    role: Role
    supervisor: StrictStr | None = Field(default=None, description="the Anima this one reports to (its folder "
                                         "name under animas/); null: the top of the org chart")
    model: Model | None = None
    background_model: Model | None = Field(default=None, description="runs heartbeats and cron; default: model")
    heartbeat_interval: Duration | None = None
    active_hours: ActiveHours | None = None
    timezone: TimeZone | None = None
    enabled: StrictBool = Field(default=True, description="false: stopped, but kept in the org")
    messaging: MessageLimitsOverride | None = None
    budget: BudgetLimits | None = Field(default=None, description="this Anima's own limits; default: "
                                                                  "org.yaml budgets.per_anima")
    deletion_policy: DeletionPolicy | None = Field(default=None, description="when it is removed from the repo; "
                                                   "default: org.yaml defaults.deletion_policy")


# ---------------------------------------------------------------- resolved spec


class CronTask(_Strict):
    """One ``## Title`` section of ``cron.md``.

    ``schedule`` is a 5-field cron expression (minute hour day-of-month month
    day-of-week; day-of-week 0 or 7 = Sunday, 1 = Monday, as in POSIX cron),
    evaluated in the Anima's time zone. A command task's non-empty output
    becomes an LLM follow-up unless ``skip_pattern`` (a regex) matches it or
    ``trigger_heartbeat`` is false.
    """

    title: str
    schedule: str
    type: Literal["llm", "command"] = "llm"
    command: str | None = None
    skip_pattern: str | None = None
    trigger_heartbeat: bool = True
    body: str = ""
    line: int = 0


class OrgPlacement(_Strict):
    """Where an Anima sits in the org chart, derived from every ``supervisor:`` field."""

    supervisor: str | None
    reports: list[str]
    peers: list[str]
    chain: list[str] = Field(description="supervisors from the direct one up to the top")


RESTART_FIELDS = ("role", "model", "background_model", "heartbeat_interval", "active_hours", "timezone")
"""Fields the Anima process is started with: changing one restarts it (``-/+``)."""

FILE_FIELDS = ("identity.md", "injection.md", "permissions.md", "cron.md")
"""Files the Anima re-reads on reload: changing one is a change in place (``~``)."""


class AnimaSpec(_Strict):
    """The resolved desired state of one Anima: what ``apply`` snapshots for the runtime."""

    name: str
    role: str
    model: str
    background_model: str = Field(description="the model for heartbeats and cron (default: model)")
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
    messaging: MessageLimits = MessageLimits()
    budget: BudgetLimits = BudgetLimits()
    org_budget: BudgetLimits = Field(default=BudgetLimits(), description="the whole org's limits (org.yaml)")
    notifications: list[HumanChannel] = Field(default=[], description="org.yaml's channels, for the top-level "
                                                                       "Anima only (the one that may call_human)")
    files: dict[str, str] = Field(description="sha256 of each spec file's text, by file name")
    deletion_policy: DeletionPolicy = "archive"
    skills: list[Skill] = Field(default=[], description="declared skills, by file name")
    memory: MemoryConfig = Field(default=MemoryConfig(), description="org.yaml's memory settings")
    sandbox: SandboxConfig = Field(default=SandboxConfig(), description="org.yaml's sandbox settings")

    def config(self) -> dict[str, Any]:
        """The restart-relevant settings, by field name."""
        return {f: getattr(self, f) for f in RESTART_FIELDS}

    def spec_hash(self) -> str:
        """sha256 over the whole resolved spec (:func:`orgctl.desired.hashing.spec_digest`); equal specs hash equal."""
        return self._spec_hash

    @functools.cached_property
    def _spec_hash(self) -> str:  # the model is frozen: computed once (plan asks for it several times per Anima)
        return spec_digest(self.model_dump(mode="json", exclude={"org": {"peers"}}), self.org.peers)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> AnimaSpec:
        """pydantic's copy, without the hash of the original when ``update`` changes fields."""
        copied = super().model_copy(update=update, deep=deep)
        if update:
            copied.__dict__.pop("_spec_hash", None)
        return copied


class OrgSpec(_Strict):
    """The whole desired state at one source (work tree or revision)."""

    name: str
    defaults: OrgDefaults
    revision: str | None = Field(description="commit sha, None for the work tree")
    animas: dict[str, AnimaSpec]
    notifications: list[HumanChannel] = []
    board_channels: list[str] = ["general", "ops"]
    schema_version: int | None = Field(default=None, description="as written in org.yaml (None: not written)")
    memory: MemoryConfig = MemoryConfig()
    sandbox: SandboxConfig = SandboxConfig()
    runtime: Literal["controller", "tick"] = "controller"
    shards: int = 1
    warnings: list[Diagnostic] = Field(default=[], description="what validate reports without refusing the spec")
    workflows: dict[str, WorkflowSpec] = Field(default={}, description="workflows/<name>.yaml, by name")

    def enabled(self) -> list[AnimaSpec]:
        return [a for a in self.animas.values() if a.enabled]
