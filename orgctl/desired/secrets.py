"""Finding secrets (API keys, tokens, private keys, passwords) in text, with Yelp's detect-secrets.

Keys and tokens belong in the environment or the org's ``.env`` file, never in
git. ``orgctl validate`` (and so ``plan`` and ``apply``) refuses a spec file
that holds one; the runtime scans what Animas write to memory with the same
:func:`scan_text`. It takes text and the file name to report, and returns
:class:`SecretFinding` s: file, line and the kind of secret, never the value.

The detectors are detect-secrets' plugins, run in process (no subprocess, no
baseline file, no global settings changed, never a network call to "verify" a
key), chosen for precision on prose, because spec and memory files are
Markdown and YAML that people and models write in sentences:

* **On:** the plugins that match a vendor's key *format* (a fixed prefix or
  shape): AWS, Artifactory, Azure storage, URLs with a password (``https://
  user:pass@host``), Discord, GitHub, GitLab, JSON Web Tokens, Mailchimp, npm,
  OpenAI, private key blocks, PyPI, SendGrid, Slack, Square, Stripe, Telegram,
  Twilio. Plus three formats detect-secrets 1.5 lacks and an org of LLM agents
  is likely to hold, as plugins on its ``RegexBasedDetector``: Anthropic
  (``sk-ant-…``), Hugging Face (``hf_…``) and Google API keys (``AIza…``).
* **Off: the high-entropy string plugins** (base64 and hex). They flag any
  random-looking quoted string: git SHAs, content hashes, ids and base64 blobs,
  which commit messages, episodes and plans are full of.
* **Off: the public IP plugin.** An address is not a secret.
* **Off: IBM Cloud IAM, IBM COS HMAC, Cloudant and SoftLayer.** Their patterns
  are keyword shapes (``cloud_api_key = <44 chars>``) that the rule below
  covers, and they were the slowest plugins on prose (each tries an all-optional
  prefix at every character), about half of the scan's time.
* **Replaced: the keyword plugin.** detect-secrets' ``KeywordDetector`` picks
  its rules by file extension: in ``.md`` it only sees quoted values (missing
  ``api_key: abc123…`` in frontmatter), in ``.yaml`` it flags any unquoted
  value, prose included (``password: rotate it monthly``), and it does not
  know ``token``. Instead one rule for every file, as a detect-secrets plugin:
  a key whose name *ends* in password, passwd, passphrase, secret, token,
  api key, access key, private key, auth key or credential(s), then ``:`` or
  ``=``, then a single word of 8 or more characters with both letters and
  digits that is not an environment variable name (``token_env:
  SLACK_BOT_TOKEN`` is what people should write), a template (``${X}``,
  ``<x>``, ``{{x}}``), a ``$VAR`` or a URL; and ``Bearer <token>``.

Every finding then goes through detect-secrets' own false-positive filters
(sequential strings like ``ABCDEF123456``, UUIDs, templates, ``$`` references,
no letters at all; and, for the generic rule only, indirect references like
``secret = get_secret()``). At most one finding per line and kind, and a line
with a vendor's key is not also reported by the generic rule. A
line that is a known false positive is allowed with detect-secrets' inline
pragma: ``# pragma: allowlist secret`` at the end of the line (``<!-- pragma:
allowlist secret -->`` in Markdown), or ``pragma: allowlist nextline secret``
alone on the line before.

detect-secrets (and ``requests``, which its plugins import) is imported on the
first scan, not with this module, so the CLI starts fast.
"""

from __future__ import annotations

import bisect
import functools
import re
import string
from dataclasses import dataclass
from typing import Any

#: detect-secrets' plugin classes that are on (see the module docstring for the ones that are off).
DETECT_SECRETS_PLUGINS = (
    "AWSKeyDetector", "ArtifactoryDetector", "AzureStorageKeyDetector", "BasicAuthDetector",
    "DiscordBotTokenDetector", "GitHubTokenDetector", "GitLabTokenDetector", "JwtTokenDetector",
    "MailchimpDetector", "NpmDetector", "OpenAIDetector", "PrivateKeyDetector", "PypiTokenDetector",
    "SendGridDetector", "SlackDetector", "SquareOAuthDetector", "StripeDetector", "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)

# Kinds whose detect-secrets name reads badly after "looks like a".
_DISPLAY_KIND = {
    "Basic Auth Credentials": "password in a URL",
    "Artifactory Credentials": "Artifactory token",
    "NPM tokens": "npm token",
    "Azure Storage Account access key": "Azure Storage account key",
}


@dataclass(frozen=True, order=True)
class SecretFinding:
    """One likely secret: where it is and what it looks like, never the value itself.

    ``line`` is 1-based (lines are split on ``\\n``). ``hint`` is a redacted
    form safe to log: the first four characters of a long value (usually its
    vendor prefix, e.g. ``AKIA…``) or just ``…``.
    """

    filename: str
    line: int
    kind: str
    hint: str = "…"

    def describe(self) -> str:
        """``looks like an AWS Access Key``: the kind with its article."""
        article = "an" if self.kind[:1].lower() in "aeio" or self.kind.startswith("npm") else "a"
        return f"looks like {article} {self.kind}"

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}: {self.describe()}"


def _redact(value: str) -> str:
    return f"{value[:4]}…" if len(value) >= 16 else "…"


# ------------------------------------------------------------------ detectors

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)  # keeps every offset
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_LETTER, _DIGIT = re.compile(r"[A-Za-z]"), re.compile(r"[0-9]")


def _credential_value(value: str) -> bool:
    """A value that looks generated (letters and digits), not a name, a reference or a URL."""
    return bool(_LETTER.search(value) and _DIGIT.search(value) and not _ENV_NAME.fullmatch(value)
                and "://" not in value and not value.startswith(("$", "{", "<", "%")))


class _Detector:
    """One detect-secrets plugin, with its patterns compiled once more for a whole-text prefilter.

    Running ~23 plugins on every line costs ~10 µs per plugin and line in
    Python. Instead each plugin's patterns are searched over the whole text
    at once (``re.MULTILINE``, lines joined by ``\\n``), and the plugin runs
    only on the lines a match touches. That finds every line a line-by-line
    scan finds: a pattern that matches inside one line matches at the same
    place in the joined text (``^``/``$`` mean line ends under MULTILINE, and
    ``\\n`` is a non-word character like the ends of a line), and a match
    consumed by an earlier, longer match still lies on a line that match
    touches. Patterns with ``\\A``/``\\Z`` would break that, so such a
    plugin scans every line. ``tests/unit/test_secrets.py`` checks the two
    agree on the whole corpus.
    """

    def __init__(self, plugin: Any, *, generic: bool = False) -> None:
        self.plugin = plugin
        self.kind: str = _DISPLAY_KIND.get(plugin.secret_type, plugin.secret_type)
        self.generic = generic
        patterns = list(plugin.denylist)
        # Our own case-insensitive patterns are written in lower case and ASCII-only: their prefilter
        # runs case-sensitively on the ASCII-lowered text, five times faster than re.IGNORECASE.
        self.lowered = bool(getattr(plugin, "prefilter_lowercase", False))
        if any("\\A" in p.pattern or "\\Z" in p.pattern for p in patterns):
            self.prefilter: tuple[re.Pattern[str], ...] | None = None
        elif self.lowered:
            self.prefilter = tuple(re.compile(p.pattern, (p.flags & ~re.IGNORECASE) | re.MULTILINE) for p in patterns)
        else:
            self.prefilter = tuple(re.compile(p.pattern, p.flags | re.MULTILINE) for p in patterns)

    def candidate_lines(self, joined: str, lowered: str, starts: list[int]) -> list[int]:
        """Indexes of the lines worth running this plugin on (``lowered``: ``joined``, ASCII-lowered)."""
        if self.prefilter is None:
            return list(range(len(starts)))
        hits: set[int] = set()
        for pattern in self.prefilter:
            for m in pattern.finditer(lowered if self.lowered else joined):
                first = bisect.bisect_right(starts, m.start()) - 1
                last = bisect.bisect_right(starts, max(m.end() - 1, m.start())) - 1
                hits.update(range(first, last + 1))
        return sorted(hits)


@functools.cache
def _detectors() -> tuple[_Detector, ...]:
    """The plugins, built once; detect-secrets is imported here, on the first scan."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    class AnthropicKeyDetector(RegexBasedDetector):
        """Anthropic API and admin keys: ``sk-ant-api03-…``, ``sk-ant-admin01-…``."""

        secret_type = "Anthropic API Key"
        denylist = (re.compile(r"sk-ant-(?:api|admin|oat)\d{2}-[A-Za-z0-9_-]{32,}"),)

    class HuggingFaceTokenDetector(RegexBasedDetector):
        """Hugging Face access tokens: ``hf_`` and 34 letters."""

        secret_type = "Hugging Face Token"
        denylist = (re.compile(r"hf_(?<![A-Za-z0-9_]hf_)[A-Za-z]{34}(?![A-Za-z0-9_])"),)

    # A literal first, then the look-behind: re finds the literal fast and checks the boundary after.
    class GoogleApiKeyDetector(RegexBasedDetector):
        """Google Cloud / Gemini API keys: ``AIza`` and 35 characters."""

        secret_type = "Google API Key"
        denylist = (re.compile(r"AIza(?<![A-Za-z0-9_-]AIza)[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])"),)

    class CredentialAssignmentDetector(RegexBasedDetector):
        """``api_key: abc123…``, ``password = "s3cr3t…"``, ``Authorization: Bearer …``, in any file type."""

        secret_type = "password or token"
        prefilter_lowercase = True  # the patterns below are lower case, re.IGNORECASE | re.ASCII
        denylist = (
            re.compile(
                r"(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
                r"|auth[_-]?key|credentials?)"
                r"[\"'\]]?[ \t]*(?::=|=>|[:=])[ \t]*[\"'`]?([^\s\"'`,;]{8,})", re.IGNORECASE | re.ASCII),
            re.compile(r"bearer(?<![a-z0-9_]bearer)[ \t]+([a-z0-9._~+/-]{16,}=*)", re.IGNORECASE | re.ASCII),
        )

        def analyze_string(self, string: str) -> Any:
            yield from (v for v in super().analyze_string(string) if _credential_value(v))

    by_name: dict[str, Any] = {c.__name__: c for c in get_mapping_from_secret_type_to_class().values()}
    vendors: list[Any] = [by_name[name] for name in DETECT_SECRETS_PLUGINS]
    vendors += [AnthropicKeyDetector, HuggingFaceTokenDetector, GoogleApiKeyDetector]
    return (*(_Detector(cls()) for cls in vendors), _Detector(CredentialAssignmentDetector(), generic=True))


# ------------------------------------------------------------------ scanning


def _matches(text: str, *, filename: str, allow_pragmas: bool, prefilter: bool,
             every: bool = False) -> list[tuple[int, str, str]]:
    """``(line index, kind, value)`` of every likely secret in ``text``, in detector order (see :func:`scan_text`).

    ``every``: the generic rule also runs on lines where a vendor's key was found (for redaction, where a
    second secret on the line must go too).
    """
    if not text:
        return []
    from detect_secrets.filters import heuristic
    from detect_secrets.filters.allowlist import is_line_allowlisted
    from detect_secrets.util.code_snippet import get_code_snippet

    lines = [line.rstrip() for line in text.split("\n")]
    joined = "\n".join(lines)
    lowered = joined.translate(_ASCII_LOWER)
    starts: list[int] = []
    offset = 0
    for line in lines:
        starts.append(offset)
        offset += len(line) + 1

    found: list[tuple[int, str, str]] = []
    flagged: set[int] = set()
    allowed: dict[int, bool] = {}
    for detector in _detectors():
        indexes = detector.candidate_lines(joined, lowered, starts) if prefilter else range(len(lines))
        for i in indexes:
            line = lines[i]
            if detector.generic and ((i in flagged and not every) or heuristic.is_indirect_reference(line)):
                continue
            for value in detector.plugin.analyze_string(line):
                if (heuristic.is_sequential_string(value) or heuristic.is_potential_uuid(value)
                        or heuristic.is_templated_secret(value) or heuristic.is_prefixed_with_dollar_sign(value)
                        or heuristic.is_not_alphanumeric_string(value)):
                    continue
                if allow_pragmas and i not in allowed:
                    allowed[i] = is_line_allowlisted(filename, line, get_code_snippet(lines, i + 1))
                if allow_pragmas and allowed[i]:
                    break
                found.append((i, detector.kind, value))
                flagged.add(i)
    return found


def scan_text(text: str, *, filename: str, allow_pragmas: bool = True,
              prefilter: bool = True) -> list[SecretFinding]:
    """Every line of ``text`` that holds a likely secret, as findings for ``filename``.

    ``filename`` is only reported (and its extension picks the comment style
    of the allowlist pragma); nothing is read from disk. At most one finding
    per line and kind; a line with a vendor's key is not also reported as a
    generic "password or token". ``allow_pragmas=False`` ignores ``pragma:
    allowlist secret`` comments (for text a person did not write).
    ``prefilter=False`` runs every plugin on every line (slow; for tests).
    """
    found: dict[tuple[int, str], SecretFinding] = {}
    for i, kind, value in _matches(text, filename=filename, allow_pragmas=allow_pragmas, prefilter=prefilter):
        found.setdefault((i, kind), SecretFinding(filename, i + 1, kind, _redact(value)))
    return sorted(found.values(), key=lambda f: (f.line, f.kind))


def redact_text(text: str, *, filename: str) -> tuple[str, list[SecretFinding]]:
    """``text`` with every likely secret replaced by ``[REDACTED <kind>]``, and what was found.

    For text a model or a tool wrote (memory): allowlist pragmas are ignored, since such text could
    carry one to smuggle a key through. A value is replaced wherever it occurs in ``text``, so a key
    quoted twice goes twice. The text is unchanged (and the list empty) when nothing is found.
    """
    matches = _matches(text, filename=filename, allow_pragmas=False, prefilter=True, every=True)
    if not matches:
        return text, []
    findings = sorted({SecretFinding(filename, i + 1, kind, _redact(value)) for i, kind, value in matches},
                      key=lambda f: (f.line, f.kind))
    lines = text.split("\n")
    for i, kind, value in matches:
        if kind == "Private Key":
            continue
        # A plugin may report only part of a key (GitHub's reports its prefix): the whole run of key characters
        # around it goes. ':' and '@' end a run, so the password in https://user:pass@host goes alone.
        run = re.compile(r"[A-Za-z0-9_\-+/.~]*" + re.escape(value) + r"[A-Za-z0-9_\-+/=~]*")
        lines[i] = run.sub(f"[REDACTED {kind}]", lines[i])
        for j, line in enumerate(lines):  # the same value quoted elsewhere
            if j != i and value in line:
                lines[j] = run.sub(f"[REDACTED {kind}]", line)
    text = _PRIVATE_KEY_BLOCK.sub("[REDACTED Private Key]", "\n".join(lines))
    return text, findings


_PRIVATE_KEY_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?"
                                r"(-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\Z)", re.DOTALL)
