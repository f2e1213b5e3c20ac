"""A built wheel is a working install: it carries the org template (with the JSON Schemas of its YAML files in
``.schemas/``), and `orgctl init` runs from it.

The wheel is built from this checkout with pip (build isolation from the local package index); it is
installed with ``--no-deps --target`` into a temporary folder that comes first on ``sys.path``, so
the orgctl that runs is the wheel's, with its dependencies taken from the test environment.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_carries_the_template_and_init_works_from_it(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
                   check=True, capture_output=True)
    [wheel] = wheels.glob("orgctl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    source = REPO / "org-template"
    template = sorted(f"orgctl/org_template/{p.relative_to(source).as_posix()}"
                      for p in source.rglob("*") if p.is_file())
    assert template and all(name in names for name in template), set(template) - set(names)
    assert {"orgctl/org_template/.schemas/org.schema.json", "orgctl/org_template/.schemas/anima.schema.json"} <= set(
        names)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import orgctl; assert orgctl.__file__.startswith(sys.argv[1])"
            ", orgctl.__file__; from orgctl.cli.main import main; sys.argv = ['orgctl', 'init', sys.argv[2]]; main()")
    org = tmp_path / "empty" / "acme"
    result = subprocess.run([sys.executable, "-c", code, str(target), str(org)], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Created org 'acme'" in result.stdout and "3 Animas" in result.stdout
    assert (org / ".gitignore").is_file() and (org / "animas/bob/memory/episodes/.gitkeep").is_file()
    assert (org / ".schemas/org.schema.json").read_bytes() == (source / ".schemas/org.schema.json").read_bytes()
    for workflow in ("orgctl-pr.yml", "orgctl-tick.yml", "orgctl-push.yml"):  # dot-folders travel too
        assert f"orgctl/org_template/.github/workflows/{workflow}" in names
        assert (org / ".github" / "workflows" / workflow).is_file()
    assert subprocess.run(["git", "-C", str(org), "status", "--porcelain"], capture_output=True,
                          text=True, check=True).stdout == ""


def test_a_process_log_is_rotated_when_it_grows_past_its_limit(tmp_path: Path) -> None:
    from orgctl.state.files import open_log

    log = tmp_path / "logs" / "bob.log"
    with open_log(log, max_bytes=100) as f:
        f.write(b"x" * 150)
    with open_log(log, max_bytes=100) as f:  # a restart: over the limit, so the old file moves aside
        f.write(b"fresh\n")
    assert log.read_bytes() == b"fresh\n" and (tmp_path / "logs" / "bob.log.1").read_bytes() == b"x" * 150
    with open_log(log, max_bytes=100) as f:
        f.write(b"more\n")
    assert log.read_bytes() == b"fresh\nmore\n"
