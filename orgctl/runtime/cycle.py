"""One agent cycle: Observe -> Plan -> Reflect, each a schema-checked model call.

Every trigger (today: the heartbeat; later: messages, cron, tasks) feeds this
one cycle. Each step's answer is a pydantic model sent as a JSON schema, so
the structure comes from the schema, not from the model. The result is one
episode: a Markdown section and a JSON line in the Anima's memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from orgctl.llm.requests import ModelClient, Usage
from orgctl.llm.structured import ask
from orgctl.memory.stores import MemoryStore
from orgctl.runtime.prompts import context_block, system_prompt
from orgctl.desired.models import AnimaSpec

RECENT_EPISODES = 3


class Observation(BaseModel):
    """Observe: what the Anima notices about its situation."""

    situation: str = Field(min_length=3, max_length=200)
    observations: list[str] = Field(min_length=1, max_length=3)


class Intent(BaseModel):
    """Plan: what it means to do next."""

    goal: str = Field(min_length=3, max_length=120)
    steps: list[str] = Field(min_length=1, max_length=3)
    priority: Literal["low", "normal", "high"]


class Reflection(BaseModel):
    """Reflect: what the cycle taught it."""

    summary: str = Field(min_length=3, max_length=200)
    lesson: str = Field(max_length=160)
    importance: int = Field(ge=1, le=5)


@dataclass(frozen=True)
class Episode:
    """The outcome of one cycle."""

    at: datetime
    trigger: str
    observation: Observation
    intent: Intent
    reflection: Reflection
    usage: Usage
    duration_s: float

    def markdown(self) -> str:
        o, i, r = self.observation, self.intent, self.reflection
        lines = [f"## {self.at.strftime('%H:%M:%S')} {self.trigger}", "",
                 f"- **Situation:** {o.situation.strip()}",
                 *(f"- **Observed:** {x.strip()}" for x in o.observations),
                 f"- **Goal ({i.priority}):** {i.goal.strip()}",
                 *(f"  {n}. {s.strip()}" for n, s in enumerate(i.steps, 1)),
                 f"- **Reflection:** {r.summary.strip()}"]
        if r.lesson.strip():
            lines.append(f"- **Lesson:** {r.lesson.strip()}")
        lines.append(f"- importance {r.importance}/5, {self.usage.total_tokens} tokens, "
                     f"{self.duration_s:.1f}s")
        return "\n".join(lines)

    def record(self, *, anima: str, revision: str | None) -> dict[str, Any]:
        return {"at": self.at.isoformat(timespec="seconds"), "anima": anima, "trigger": self.trigger,
                "revision": revision, "observe": self.observation.model_dump(),
                "plan": self.intent.model_dump(), "reflect": self.reflection.model_dump(),
                "usage": self.usage.model_dump(), "duration_s": round(self.duration_s, 3)}


def run_cycle(*, spec: AnimaSpec, store: MemoryStore, client: ModelClient, now: datetime,
              trigger: str = "heartbeat", revision: str | None = None) -> Episode:
    """Run Observe -> Plan -> Reflect for ``spec`` at local time ``now`` and store the episode.

    Raises :class:`orgctl.errors.ModelError` when a step gets no valid
    answer; nothing is written to memory then.
    """
    started = time.monotonic()
    system = system_prompt(spec)
    context = context_block(now=now, episodes=store.recent_episodes(RECENT_EPISODES),
                            knowledge=store.recent_knowledge(1))
    common = {"model": spec.model, "system": system, "anima": spec.name}

    observation, u1 = ask(client, **common, purpose="observe", answer=Observation,
                          user=f"{context}\n\nObserve: describe your situation and what you notice.")
    intent, u2 = ask(client, **common, purpose="plan", answer=Intent,
                     user=f"{context}\n\nYou observed: {observation.model_dump_json()}\n\n"
                          "Plan: what is your goal now and the next steps?")
    reflection, u3 = ask(client, **common, purpose="reflect", answer=Reflection,
                         user=f"You observed: {observation.model_dump_json()}\n"
                              f"You planned: {intent.model_dump_json()}\n\n"
                              "Reflect: summarise this moment and any lesson, rate its importance 1-5.")
    episode = Episode(at=now, trigger=trigger, observation=observation, intent=intent,
                      reflection=reflection, usage=u1 + u2 + u3,
                      duration_s=time.monotonic() - started)
    store.append_episode(day=now.date(), markdown=episode.markdown(),
                         record=episode.record(anima=spec.name, revision=revision))
    return episode
