"""YAML documents and Markdown frontmatter that remember where each value came from.

``yaml.safe_load`` forgets line numbers; diagnostics need them. So a document
is composed to a node tree (which has positions), and that same tree is
constructed into plain Python data (for pydantic). :class:`Located` maps a
pydantic error location (``("heartbeat_interval",)``) back to a line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from orgctl.errors import Diagnostic

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it (about 10x faster on a large org), else PyYAML's."""


@dataclass
class Located:
    """Parsed data plus the line of every key path inside it.

    ``lines`` maps a tuple path (mapping keys and list indices) to the
    1-based line where its value starts; ``key_lines`` to the line of the key
    itself. ``base_line`` is the line where the document starts in its file
    (frontmatter starts at line 2).
    """

    data: Any
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)
    key_lines: dict[tuple[Any, ...], int] = field(default_factory=dict)
    base_line: int = 1
    duplicates: list[tuple[str, int, int]] = field(default_factory=list)
    """(key, line, first line) of keys repeated in one mapping (YAML loaders keep the last silently)."""

    def line_of(self, loc: tuple[Any, ...]) -> int:
        """Best line for ``loc``: its key, else its value, else the nearest parent's."""
        loc = tuple(loc)
        while loc:
            if loc in self.key_lines:
                return self.key_lines[loc]
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), self.base_line)


YamlParser = Callable[..., "tuple[Located | None, list[Diagnostic]]"]
"""What :func:`parse_yaml` is: ``(text, *, file, first_line=1) -> (Located | None, diagnostics)``."""


def _index(node: yaml.Node, path: tuple[Any, ...], out: Located, offset: int) -> None:
    out.lines[path] = node.start_mark.line + 1 + offset
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1 + offset
            if key in seen:
                out.duplicates.append((str(key), line, seen[key]))
            seen.setdefault(key, line)
            out.key_lines[path + (key,)] = line
            _index(value_node, path + (key,), out, offset)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, path + (i,), out, offset)


def first_alias(text: str) -> int | None:
    """The 0-based line of the first YAML alias (``*name``) in ``text``, or None. Spec files and character
    sheets refuse aliases: a few hundred bytes of nested ``&a [*a, *a, ...]`` expand to gigabytes once
    anything walks or serialises the data (the "billion laughs" of YAML), and a spec never needs them.
    Raises nothing: text that does not scan is left to the parser's own error."""
    if "*" not in text or "&" not in text:
        return None  # no anchor or no alias: the common case costs one scan of the string
    try:
        for token in yaml.scan(text, Loader=_Loader):
            if isinstance(token, yaml.AliasToken):
                return token.start_mark.line
    except yaml.YAMLError:
        return None
    return None


def parse_yaml(text: str, *, file: str, first_line: int = 1) -> tuple[Located | None, list[Diagnostic]]:
    """Parse one YAML document.

    Returns ``(Located, [])`` or ``(None, [diagnostic])`` when the text is not
    valid YAML or uses an alias (:func:`first_alias`). ``first_line`` is the file line where ``text``
    starts. An empty document parses to ``None`` data.
    """
    offset = first_line - 1
    if (alias := first_alias(text)) is not None:
        return None, [Diagnostic(file, alias + 1 + offset, "YAML aliases (*name) are not allowed in spec files: "
                                                           "write the value out")]
    loader = _Loader(text)
    try:  # one parse: the node tree gives the lines, the same tree is constructed into data
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = (mark.line + 1 + offset) if mark else first_line
        reason = " ".join(filter(None, [e.context, e.problem])) or "invalid YAML"
        return None, [Diagnostic(file, line, f"invalid YAML: {reason}")]
    except yaml.YAMLError as e:
        return None, [Diagnostic(file, first_line, f"invalid YAML: {e}")]
    finally:
        loader.dispose()
    located = Located(data=data, base_line=first_line)
    if node is not None:
        _index(node, (), located, offset)
    dups = [Diagnostic(file, line, f"duplicate key {key!r} (first on line {first})")
            for key, line, first in located.duplicates]
    return (None, dups) if dups else (located, [])


@dataclass
class MarkdownDoc:
    """A Markdown file split into optional YAML frontmatter and body.

    ``body_line`` is the file line on which ``body`` starts.
    """

    frontmatter: Located | None
    body: str
    body_line: int


def parse_markdown(text: str, *, file: str, parse: YamlParser | None = None
                   ) -> tuple[MarkdownDoc | None, list[Diagnostic]]:
    """Split frontmatter (``---`` fenced YAML at the very top) from the body.

    Frontmatter, when present, must be a YAML mapping, parsed with ``parse`` (default
    :func:`parse_yaml`; the loader passes its cache's). Returns the document
    and diagnostics; the document is None when the frontmatter is broken.
    """
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != "---":
        return MarkdownDoc(frontmatter=None, body=text, body_line=1), []
    for i in range(1, len(lines)):
        if lines[i].rstrip("\r\n") in ("---", "..."):
            fm_text = "".join(lines[1:i])
            located, diags = (parse or parse_yaml)(fm_text, file=file, first_line=2)
            if diags:
                return None, diags
            assert located is not None
            if located.data is None:
                located.data = {}
            if not isinstance(located.data, dict):
                return None, [Diagnostic(file, 2, "invalid frontmatter: expected a mapping of keys")]
            return MarkdownDoc(frontmatter=located, body="".join(lines[i + 1:]), body_line=i + 2), []
    return None, [Diagnostic(file, 1, "invalid frontmatter: opening '---' has no closing '---'")]
