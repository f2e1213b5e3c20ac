"""Spec changes a task asks for, read from the task's own words and offered as fully formed choices.

A person tells a manager "hire a researcher named dave" or "switch bob to openai/gpt-4o-mini". The
framework, not the model, reads the arguments out of the text: a role from the known roles, a name
the loader accepts, a model string the loader accepts, a target that is the caller or one of its
reports. The model only chooses whether to propose, from an enum of complete proposals, so a 135M
model cannot invent a name or a model. Whatever it chooses, a proposal is a commit on an
``orgctl/proposals/...`` branch (:mod:`orgctl.gitops.proposals`); nothing changes until a person merges it
and runs plan and apply.
"""

from __future__ import annotations

import re
from typing import Any

from orgctl.desired.loading import check_name
from orgctl.desired.models import AnimaSpec, parse_model
from orgctl.desired.roles import ROLES
from orgctl.runtime.deciding import Option

_HIRE = re.compile(r"\bhire\b.*?\b(?P<role>" + "|".join(map(re.escape, ROLES)) + r")s?\b.*?\b(?:named|called)\s+"
                   r"(?P<name>[A-Za-z][A-Za-z0-9_-]{0,62})", re.IGNORECASE | re.DOTALL)
_MODEL = re.compile(r"(?<![\w/])([A-Za-z0-9_.-]+/[A-Za-z0-9_.:-]*[A-Za-z0-9])")
_MODEL_WORD = re.compile(r"\bmodels?\b", re.IGNORECASE)
_PROVIDERS = frozenset("local openai anthropic ollama ollama_chat gemini vertex_ai azure bedrock mistral groq "
                       "together_ai openrouter deepseek huggingface cohere xai fireworks_ai".split())
"""Providers a model string is recognised by without the word "model" nearby (``git log/HEAD`` is not one)."""


def proposal_options(spec: AnimaSpec, text: str, *, known: set[str] | frozenset[str]) -> list[Option]:
    """Proposals ``text`` asks of ``spec``'s Anima, as options with action ``propose`` (may be empty).

    ``known``: the names of the applied Animas (a hire of a known name is not offered). A hire goes
    under the caller; a model change targets the caller or a direct report named in the text.
    """
    options: list[Option] = []
    if m := _HIRE.search(text):
        name, role = m.group("name").lower(), m.group("role").lower()
        if not check_name(name) and name not in known:
            options.append(Option(f"propose hiring {name} as {role}",
                                  f"commit a proposal to hire {name} ({role}) in your team, for a person to merge",
                                  "propose", {"kind": "hire", "name": name, "role": role}))
    targets = [n for n in (spec.name, *spec.org.reports)
               if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text, re.IGNORECASE)]
    for model in dict.fromkeys(_MODEL.findall(text)):
        if model.split("/", 1)[0].lower() not in _PROVIDERS and not _MODEL_WORD.search(text):
            continue
        try:
            parse_model(model)
        except ValueError:
            continue
        for target in targets or [spec.name]:
            options.append(Option(f"propose {target} uses {model}",
                                  f"commit a proposal to set {target}'s model to {model}, for a person to merge",
                                  "propose", {"kind": "set_model", "target": target, "model": model}))
    return options


def make_proposal(tools: Any, caller: str, args: dict[str, Any], *, trust: str) -> Any:
    """Carry out a ``propose`` option through the org tools; a ``ProposalResult`` or a ``Refusal``."""
    if args["kind"] == "hire":
        return tools.propose_hire(caller, args["name"], args["role"], caller, trust=trust)
    return tools.propose_set_model(caller, args["target"], args["model"], trust=trust)
