"""Building an Anima's prompt: who it is, where it sits, what it remembers.

Kept short on purpose: the embedded model has a 4k-token window and 135M
parameters. Each part is clipped to a character budget (about 4 chars/token).
"""

from __future__ import annotations

from orgctl.desired.models import AnimaSpec
from orgctl.desired.roles import ROLES

IDENTITY_BUDGET = 900  # characters
INJECTION_BUDGET = 900


def clip(text: str, budget: int) -> str:
    """``text`` cut to ``budget`` characters at a line or word boundary, marked with an ellipsis."""
    text = text.strip()
    if len(text) <= budget:
        return text
    cut = text[:budget]
    cut = cut[: max(cut.rfind("\n"), cut.rfind(" "), budget // 2)]
    return cut.rstrip() + " …"


def org_chart_lines(spec: AnimaSpec) -> list[str]:
    """Sentences placing the Anima in the org chart."""
    org = spec.org
    lines = [f"Your supervisor: {org.supervisor}." if org.supervisor else "You are at the top of the organization."]
    if org.reports:
        lines.append(f"Your reports: {', '.join(org.reports)}.")
    if org.peers:
        lines.append(f"Your peers: {', '.join(org.peers)}.")
    return lines


def system_prompt(spec: AnimaSpec) -> str:
    """The system prompt: identity, role, guidelines, org chart, permissions."""
    parts = [
        f"You are {spec.name}, an autonomous {spec.role} in an organization of AI agents.",
        clip(spec.identity, IDENTITY_BUDGET),
        f"Role: {ROLES[spec.role]}",
    ]
    if spec.injection:
        parts.append("Guidelines:\n" + clip(spec.injection, INJECTION_BUDGET))
    parts.append(" ".join(org_chart_lines(spec)))
    tools = ", ".join(spec.permissions.tools) or "none"
    parts.append(f"Tools you may use: {tools}.")
    parts.append("You choose among the listed choices; the organization carries them out.")
    return "\n\n".join(p for p in parts if p)
