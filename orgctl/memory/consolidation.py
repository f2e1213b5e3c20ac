"""Consolidation: distil a day's episodes into a knowledge note, then commit the pass.

One pass per Anima per run, one git commit per pass (by the bot, trailers
``Orgctl-Anima``, ``-Pass``, ``-Source-Revision``, ``-Episodes``,
``-Knowledge-Notes``, ``-Tokens``). The commit carries everything the Anima's
memory gained since the last pass (episodes, activity log, the new note), so
``git show`` of it reads as "what this Anima lived and what it learned".
The idea of sleep-like consolidation of episodic into semantic memory is
from complementary learning systems theory (McClelland et al., 1995), as
used by AnimaWorks and Generative Agents (Park et al., 2023).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from orgctl.gitops.clones import RuntimeClone
from orgctl.llm.requests import ModelClient
from orgctl.llm.structured import say_line
from orgctl.memory.stores import MemoryStore
from orgctl.state.inventories import now_iso

TITLE_TOKENS = 24  # the model names the day in a few words; the facts come from the activity log
TITLE_CHARS = 80


@dataclass(frozen=True)
class PassResult:
    """Outcome of one consolidation pass. ``commit`` is None when nothing was committed."""

    anima: str
    episodes: int
    note: Path | None
    commit: str | None
    tokens: int
    skipped: str | None = None


def _observed_facts(store: MemoryStore, day: date, *, limit: int = 8) -> list[str]:
    """The note's facts: what the activity log says was done that day, the newest ``limit``
    distinct actions, each one line of at most 200 characters."""
    did = list(dict.fromkeys(" ".join(str(x).split())[:200] for rec in store.activity(day)
                             for x in rec.get("did") or []))
    return did[-limit:] or [f"{len(store.episodes(day))} episodes, nothing done"]


def _title(text: str) -> str:
    """The model's line as a one-line title (Markdown marks and quotes dropped, at most TITLE_CHARS);
    '' for JSON-like or too-short text."""
    line = text.splitlines()[0] if text else ""
    if re.search(r'[{}\[\]]|":', line):  # JSON or markup, not words: the fallback title is better
        return ""
    line = line.strip().lstrip("#*-> ").strip().strip("\"'`").strip().rstrip(".")
    line = re.sub(r"^\d{1,2}:\d{2}(:\d{2})?\s*", "", line)  # an echoed "HH:MM" of the input is no title
    if len(line) > TITLE_CHARS:
        line = line[:TITLE_CHARS].rsplit(" ", 1)[0]
    return line if len(line) >= 3 else ""


def _grounded(title: str, facts: list[str]) -> bool:
    """True when every content word of ``title`` (4+ letters, or with a digit) occurs in ``facts``.

    The embedded model, asked for a title, invents dates and stories ("A Day in the Life of a
    Pirate", measured: 20 of 20 titles had words the day did not contain); a bigger model's summary
    of what happened passes this check, an invention does not.
    """
    source = " ".join(facts).lower()
    words = [w for w in re.findall(r"[a-z0-9][a-z0-9-]*", title.lower()) if len(w) >= 4 or any(c.isdigit() for c in w)]
    return bool(words) and all(w in source for w in words)


def _plain_title(facts: list[str]) -> str:
    """A title made of the day's own words: its first action that is not a greeting, and how many more."""
    real = [f for f in facts if not f.startswith("introduced myself")] or facts
    if not real or real[0].endswith("nothing done"):
        return ""
    first = real[0].split(":", 1)[0]
    first = first if len(first) <= TITLE_CHARS - 12 else first[: TITLE_CHARS - 12].rsplit(" ", 1)[0]
    return first + (f" (+{len(facts) - 1} more)" if len(facts) > 1 else "")


def consolidate(*, clone: RuntimeClone, anima: str, model: str, day: date, client: ModelClient,
                source_revision: str | None) -> PassResult:
    """Run one consolidation pass for ``anima`` over ``day``'s episodes and commit it in the runtime's ``clone``.

    The note's facts are the day's actions from the activity log; the model names the day in a
    title line, kept only when its words are the day's own (:func:`_grounded`; else a title made of
    the first action). Returns a PassResult (``skipped``
    says why when there were no episodes). Raises ModelError when the model call fails and
    GitError when the commit fails; in both cases nothing is committed.
    """
    memory_rel = f"animas/{anima}/memory"
    store = MemoryStore(clone.root / memory_rel, anima=anima)
    episodes = store.episodes(day)
    if not episodes:
        return PassResult(anima=anima, episodes=0, note=None, commit=None, tokens=0,
                          skipped=f"no episodes on {day.isoformat()}")
    # The facts are what the activity log says was done: real observations, never invented. The
    # model adds the one thing a tiny model does well, a few words naming the day, in a plain-text
    # call of its own, so that nothing it writes can cut a JSON answer short.
    facts = _observed_facts(store, day)
    system = f"You are the memory of {anima}. You name a day's work in a few plain words."
    title, usage = say_line(client, model=model, system=system, anima=anima, purpose="consolidation",
                            prompt=f"What {anima} did on {day.isoformat()}:\n" + "\n".join(f"- {f}" for f in facts)
                                   + "\n\nName this day's work in at most eight words.",
                            max_tokens=TITLE_TOKENS)
    title = _title(title)
    if not _grounded(title, facts):
        title = _plain_title(facts) or f"What {anima} did on {day.isoformat()}"
    meta = {"anima": anima, "date": day.isoformat(), "title": title,
            "pass": "consolidation", "episodes": len(episodes), "model": model,
            "source_revision": source_revision, "created": now_iso()}
    body = f"# {title}\n\n" + "\n".join(f"- {f}" for f in facts)
    note = store.write_knowledge(day=day, meta=meta, body=body)
    sha = clone.commit(
        [memory_rel],
        subject=f"memory({anima}): consolidate {day.isoformat()}",
        body=f"Distilled {len(episodes)} episodes into {note.relative_to(clone.root).as_posix()}.",
        trailers={"Anima": anima, "Pass": "consolidation",
                  "Source-Revision": source_revision or "work-tree",
                  "Episodes": len(episodes), "Knowledge-Notes": 1,
                  "Tokens": usage.total_tokens})
    return PassResult(anima=anima, episodes=len(episodes), note=note, commit=sha,
                      tokens=usage.total_tokens)
