"""No secret in the repository or its history: every commit's added lines and added files are scanned.

The patterns are those of real credentials (private keys, cloud and forge tokens, a literal
Django SECRET_KEY, RoboTest's own rig tokens); the placeholders the settings and tests use on
purpose are listed by value, so a new literal key fails until someone looks at it.
"""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA |ENCRYPTED )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "RoboTest rig token": re.compile(r"\brig_[A-Za-z0-9_-]{32,}"),
    "literal SECRET_KEY": re.compile(r"""SECRET_KEY\s*[=:]\s*["']([^"'\s]{16,})["']"""),
}
# Literal keys that are placeholders on purpose: debug-only, test-only, or documentation.
PLACEHOLDERS = {
    "insecure-debug-only-key",
    "e2e-secret-key-not-for-production",
    "benchmark-only-secret-key-not-for-production",
}
# Every file but this one, whose examples spell what the scan looks for.
PATHS = ("--", ".", ":(exclude)tests/test_no_secrets.py")
SECRET_FILES = re.compile(r"(^|/)(\.env|secret_key|id_rsa[^/]*|[^/]+\.pem|[^/]+\.key)$")


def findings(diff: str) -> list[str]:
    """What looks like a secret among the added lines of a `git log -p` text."""
    found = []
    commit = "?"
    for line in diff.splitlines():
        if line.startswith("commit "):
            commit = line.split()[1][:10]
            continue
        if not line.startswith("+") or line.startswith("+++"):
            continue
        for name, pattern in PATTERNS.items():
            match = pattern.search(line)
            if match is None:
                continue
            if name == "literal SECRET_KEY" and match.group(1) in PLACEHOLDERS:
                continue
            found.append(f"{commit}: {name}: {line[:120]}")
    return found


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def history() -> str:
    if _git("rev-parse", "--is-shallow-repository").strip() == "true":
        _git("fetch", "--unshallow")
    return _git("log", "--all", "-p", "--no-color", "--no-ext-diff", "--format=commit %H", *PATHS)


def test_no_commit_adds_a_line_that_looks_like_a_secret(history):
    assert history.count("\ncommit ") + 1 == int(_git("rev-list", "--all", "--count", *PATHS)), "every commit scanned"
    assert findings(history) == []


def test_no_commit_adds_a_secret_file():
    added = _git("log", "--all", "--diff-filter=A", "--name-only", "--format=")
    assert sorted({path for path in added.splitlines() if SECRET_FILES.search(path)}) == []


def test_the_scan_finds_a_planted_key():
    key, begin = "SECRET_KEY", "-----BEGIN OPENSSH PRIVATE KEY-----"
    planted = (
        "commit 0123456789abcdef\n+++ b/robotest_site/settings/production.py\n"
        f'+{key} = "k3y-that-someone-pasted-from-production"\n'
        f'+{key} = "insecure-debug-only-key"\n'
        f"+{begin}\n"
        "-AKIAABCDEFGHIJKLMNOP removed lines are not added ones\n"
    )
    assert [f.split(": ")[1] for f in findings(planted)] == ["literal SECRET_KEY", "private key"]
