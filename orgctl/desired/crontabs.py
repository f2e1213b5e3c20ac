"""Parsing ``cron.md``: one ``## Title`` section per scheduled task.

Format (after AnimaWorks, whose users know it)::

    ## Weekly report
    schedule: 0 9 * * 1
    type: llm

    Prompt text for the task...

Each section starts with ``key: value`` lines up to the first blank line;
known keys are ``schedule`` (required, 5-field cron, day-of-week 0 or 7 =
Sunday, 1 = Monday ... 6 = Saturday, as in POSIX cron; evaluated in the
Anima's time zone), ``type`` (``llm`` or ``command``), ``command`` (required
for ``type: command``), ``skip_pattern`` (a regex: output it matches triggers
no follow-up) and ``trigger_heartbeat`` (``true``/``false``: whether a
command's non-empty output becomes an LLM follow-up). The rest of the
section is the body (the prompt of an ``llm`` task).
Text before the first ``##`` is free commentary.
"""

from __future__ import annotations

import functools
import re

from orgctl.desired.models import CronTask
from orgctl.errors import Diagnostic

_KEYS = {"schedule", "type", "command", "skip_pattern", "trigger_heartbeat"}
_KEY_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$")


@functools.lru_cache(maxsize=1024)
def check_cron_expression(expr: str) -> str | None:
    """Return None if ``expr`` is a valid 5-field cron expression, else the reason (cached: an org's
    schedules repeat, and croniter's check costs half a millisecond)."""
    from croniter import croniter  # imported here: only validation needs it

    fields = expr.split()
    if len(fields) != 5:
        return f"cron expression {expr!r} must have 5 fields (minute hour day month weekday), has {len(fields)}"
    if not croniter.is_valid(expr):
        return f"invalid cron expression {expr!r}"
    return None


def parse_cron_md(text: str, *, file: str, first_line: int = 1) -> tuple[list[CronTask], list[Diagnostic]]:
    """Parse the body of a ``cron.md``. Returns tasks and diagnostics (file lines are 1-based)."""
    tasks: list[CronTask] = []
    diags: list[Diagnostic] = []
    sections: list[tuple[str, int, list[tuple[int, str]]]] = []
    for offset, raw in enumerate(text.splitlines()):
        lineno = first_line + offset
        if raw.startswith("## "):
            sections.append((raw[3:].strip(), lineno, []))
        elif sections:
            sections[-1][2].append((lineno, raw))

    titles: set[str] = set()
    for title, title_line, lines in sections:
        if not title:
            diags.append(Diagnostic(file, title_line, "cron task heading has no title"))
            continue
        if title in titles:
            diags.append(Diagnostic(file, title_line, f"duplicate cron task title {title!r}"))
        titles.add(title)
        fields: dict[str, tuple[int, str]] = {}
        body_start = len(lines)
        for i, (lineno, raw) in enumerate(lines):
            if not raw.strip():
                if fields:
                    body_start = i + 1
                    break
                continue
            m = _KEY_LINE.match(raw)
            if not m:
                body_start = i
                break
            key, value = m.group(1), m.group(2).strip()
            if key not in _KEYS:
                diags.append(Diagnostic(file, lineno, f"unknown key {key!r} in cron task {title!r} "
                                                      f"(known: {', '.join(sorted(_KEYS))})"))
                continue
            fields[key] = (lineno, value)
        body = "\n".join(r for _, r in lines[body_start:]).strip()

        if "schedule" not in fields:
            diags.append(Diagnostic(file, title_line, f"cron task {title!r} has no 'schedule:' line"))
            continue
        sched_line, schedule = fields["schedule"]
        if problem := check_cron_expression(schedule):
            diags.append(Diagnostic(file, sched_line, problem))
            continue
        task_type = fields.get("type", (title_line, "llm"))[1]
        if task_type not in ("llm", "command"):
            diags.append(Diagnostic(file, fields["type"][0],
                                    f"cron task type must be 'llm' or 'command', got {task_type!r}"))
            continue
        command = fields.get("command", (0, None))[1]
        if task_type == "command" and not command:
            diags.append(Diagnostic(file, title_line, f"cron task {title!r} has type command but no 'command:'"))
            continue
        skip = fields.get("skip_pattern", (0, None))[1]
        if skip:
            try:
                re.compile(skip)
            except re.error as e:
                diags.append(Diagnostic(file, fields["skip_pattern"][0], f"invalid skip_pattern regex: {e}"))
                continue
        trigger = fields.get("trigger_heartbeat", (0, "true"))[1].lower()
        if trigger not in ("true", "false"):
            diags.append(Diagnostic(file, fields["trigger_heartbeat"][0],
                                    f"trigger_heartbeat must be true or false, got {trigger!r}"))
            continue
        if task_type == "llm" and not body:
            diags.append(Diagnostic(file, title_line, f"cron task {title!r} of type llm has no prompt body"))
            continue
        tasks.append(CronTask(title=title, schedule=schedule, type=task_type,  # type: ignore[arg-type]
                              command=command, skip_pattern=skip or None, trigger_heartbeat=trigger == "true",
                              body=body, line=title_line))
    return tasks, diags
