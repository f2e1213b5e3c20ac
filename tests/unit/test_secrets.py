"""The secret scanner (detect-secrets plugins, in process): what it finds, where, and what it leaves alone.

The fake keys are assembled from pieces at run time, so this file holds no
contiguous key for other scanners (GitHub push protection, a pre-commit hook)
to trip over. None of them is a real credential.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orgctl.desired.secrets import SecretFinding, scan_text
from orgctl.paths import template_dir

AWS = "AKIA" + "Z3MSJV4WWNKWLQ7K"
GITHUB = "ghp_" + "wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx"
SLACK = "xoxb-" + "2610348371-2617283724502-3g6k6k8yqw7mb1jt9x4pq2ls"
OPENAI = "sk-proj-" + "Ab3dE5fG7hJ9kL1mN3pQ" + "T3BlbkFJ" + "Zq2Wx4Ec6Rv8Tb1Yn3Um"
ANTHROPIC = ("sk-ant-api03-" + "Xk2Lq9Wm4Rt7Yp1Zs8Vb3Nc6Hd0Jf5Gg2Aa7Ee9Ii4Oo1Uu6Kk3Mm8"
             + "Pp0Qq5Rr2Ss7Tt9Vv4Ww1Xx6Yy3Zz8" + "-AA")
HUGGING_FACE = "hf_" + "XkLqWmRtYpZsVbNcHdJfGgAaEeIiOoUuKk"
GOOGLE = "AIza" + "SyB7dH2kLmN4pQ6rS8tV0wX1yZ3aC5eG7iJ"
PEM = "-----BEGIN " + "RSA PRIVATE KEY-----"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0"
       + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")

# (file name, text, the line and kind expected)
FOUND = [
    ("animas/bob/identity.md", f"# Bob\n\nBob deploys with {AWS} on Fridays.\n", 3, "AWS Access Key"),
    ("animas/bob/injection.md", f"- push with the token {GITHUB}\n", 1, "GitHub Token"),
    ("org.yaml", f"name: acme\nslack_token: {SLACK}\n", 2, "Slack Token"),
    ("animas/bob/permissions.md", f"---\ntools: []\n---\nexport OPENAI_API_KEY={OPENAI}\n", 4, "OpenAI Token"),
    ("animas/bob/identity.md", f"Use `{ANTHROPIC}` for Claude.\n", 1, "Anthropic API Key"),
    ("animas/bob/identity.md", f"HF_TOKEN={HUGGING_FACE}\n", 1, "Hugging Face Token"),
    ("animas/bob/identity.md", f"maps key {GOOGLE}\n", 1, "Google API Key"),
    ("animas/bob/identity.md", f"Keep this:\n\n```\n{PEM}\nMIIEpAIBAAKCAQEA\n```\n", 4, "Private Key"),
    ("animas/bob/identity.md", f"session {JWT}\n", 1, "JSON Web Token"),
    ("animas/bob/anima.yaml", "role: engineer\ntoken: abc123longrandom\n", 2, "password or token"),
    ("animas/bob/anima.yaml", "api_key: 'abc123longrandom'\n", 1, "password or token"),
    ("animas/bob/permissions.md", "---\napi_key: abc123longrandom\n---\n", 2, "password or token"),
    ("animas/bob/identity.md", 'Log in with password = "Tr0ub4dor&3x"\n', 1, "password or token"),
    ("animas/bob/cron.md", "command: curl -H 'Authorization: Bearer 9f8e7d6c5b4a39281706abcdef' x\n", 1,
     "password or token"),
    ("org.yaml", "notifications:\n  - type: ntfy\n    url: https://bob:hunter2hunter@ntfy.example.com/acme\n", 3,
     "password in a URL"),
]

# Ordinary spec text and prose: nothing here is a secret.
PROSE = """\
# Carol

Rotate the password monthly. The password policy: at least 16 characters.
Password: required. Secret: none. Token budget: 10k a day.
Never paste an API key into a spec file; ask alice for the key vault.
Fixed in 3f2c1d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d (see also `3f2c1d9`).
Task 123e4567-e89b-12d3-a456-426614174000 is done;
sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.
token: 123e4567-e89b-12d3-a456-426614174000
ping 8.8.8.8 and 10.0.0.1 to check the network.
Our base64 logo: "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
max_tokens: 512
tokens_per_day: 100000
token_env: SLACK_BOT_TOKEN
api_key: ${OPENAI_API_KEY}
password: <your password>
secret: $DB_SECRET
api_key = os.environ["OPENAI_API_KEY"]
password: ********
model: anthropic/claude-sonnet-4-5
heartbeat_interval: 30m
  - command: git log --oneline --since=1.week
"""


@pytest.mark.parametrize(("filename", "text", "line", "kind"), FOUND, ids=[f[3] + "-" + f[0] for f in FOUND])
def test_finds_the_secret_with_file_line_and_kind(filename: str, text: str, line: int, kind: str) -> None:
    found = scan_text(text, filename=filename)
    assert [(f.filename, f.line, f.kind) for f in found] == [(filename, line, kind)]


SECRETS = [AWS, GITHUB, SLACK, OPENAI, ANTHROPIC, HUGGING_FACE, GOOGLE, PEM, JWT, "abc123longrandom",
           "Tr0ub4dor&3x", "9f8e7d6c5b4a39281706abcdef", "hunter2hunter"]


@pytest.mark.parametrize(("filename", "text"), [f[:2] for f in FOUND], ids=[f[3] + "-" + f[0] for f in FOUND])
def test_a_finding_never_holds_the_secret(filename: str, text: str) -> None:
    [finding] = scan_text(text, filename=filename)
    shown = f"{finding} {finding!r}"
    assert not [s for s in SECRETS if s in shown or s[4:12] in shown]
    assert len(finding.hint.removesuffix("…")) <= 4


def test_prose_hashes_ids_and_references_are_not_secrets() -> None:
    assert scan_text(PROSE, filename="animas/carol/identity.md") == []
    assert scan_text(PROSE, filename="animas/carol/anima.yaml") == []


def template_files() -> list[Path]:
    return sorted(p for p in template_dir().rglob("*") if p.is_file() and p.suffix in (".md", ".yaml", ".yml"))


def test_the_org_template_has_no_secrets() -> None:
    assert len(template_files()) >= 15
    for path in template_files():
        rel = path.relative_to(template_dir()).as_posix()
        assert scan_text(path.read_text(), filename=rel) == [], rel


def test_line_numbers_count_newlines_with_crlf_and_blank_lines() -> None:
    text = f"one\r\n\r\nthree\r\nkey {AWS}\r\nfive {GITHUB}"
    assert [(f.line, f.kind) for f in scan_text(text, filename="x.md")] == [(4, "AWS Access Key"), (5, "GitHub Token")]


def test_one_finding_per_line_and_kind_and_vendor_beats_generic() -> None:
    text = f"OPENAI_API_KEY={OPENAI}\naws_access_key_id: {AWS} {AWS}\n"
    assert [(f.line, f.kind) for f in scan_text(text, filename="x.yaml")] == [
        (1, "OpenAI Token"), (2, "AWS Access Key")]


def test_str_names_file_line_and_kind() -> None:
    assert str(SecretFinding("org.yaml", 3, "AWS Access Key")) == "org.yaml:3: looks like an AWS Access Key"
    assert SecretFinding("a.md", 1, "GitHub Token").describe() == "looks like a GitHub Token"


def test_allowlist_pragma_same_line_and_next_line() -> None:
    same = f"example: {AWS}  <!-- pragma: allowlist secret -->\n"
    nxt = f"<!-- pragma: allowlist nextline secret -->\nexample: {AWS}\nagain: {AWS}\n"
    assert scan_text(same, filename="a.md") == []
    assert [f.line for f in scan_text(nxt, filename="a.md")] == [3]
    assert [f.line for f in scan_text("token: abc123longrandom  # pragma: allowlist secret\n",
                                      filename="a.yaml")] == []
    assert len(scan_text(same, filename="a.md", allow_pragmas=False)) == 1


def test_prefilter_finds_exactly_what_a_line_by_line_scan_finds() -> None:
    texts = [(f, t) for f, t, _, _ in FOUND] + [("p.md", PROSE), ("p.yaml", PROSE)]
    texts += [(p.name, p.read_text()) for p in template_files()]
    texts += [(p.name, p.read_text()) for p in sorted((Path(__file__).parents[2] / "docs").glob("*.md"))]
    texts.append(("all.md", "\n".join(t for _, t, _, _ in FOUND) + PROSE))
    texts.append(("crlf.md", "\r\n".join(t for _, t, _, _ in FOUND)))
    for filename, text in texts:
        assert scan_text(text, filename=filename) == scan_text(text, filename=filename, prefilter=False), filename


def test_empty_text() -> None:
    assert scan_text("", filename="a.md") == [] and scan_text("\n\n", filename="a.md") == []


def test_loading_the_spec_does_not_import_detect_secrets() -> None:
    """The CLI starts fast: detect-secrets (and requests) load on the first scan only."""
    code = ("import sys, orgctl.cli.main, orgctl.desired.loading; "
            "assert 'detect_secrets' not in sys.modules and 'requests' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
