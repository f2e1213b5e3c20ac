"""``file_inside``: a path from outside (a URL, a command line) resolved inside its folder, on a real tree."""

from __future__ import annotations

from pathlib import Path

from orgctl.state.files import file_inside


def test_only_regular_files_inside_through_no_link_are_given(tmp_path: Path) -> None:
    base = tmp_path / "memory"
    (base / "knowledge").mkdir(parents=True)
    (base / "knowledge" / "bob.md").write_text("- a fact\n")
    (tmp_path / "secret.md").write_text("outside\n")
    (base / "knowledge" / "link.md").symlink_to(tmp_path / "secret.md")
    (base / "linked").symlink_to(base / "knowledge")  # a linked folder, even one that points back inside
    assert file_inside(base, "knowledge/bob.md") == (base / "knowledge" / "bob.md").resolve()
    for rel in ("", "/etc/passwd", "../secret.md", "knowledge/../../secret.md", "knowledge/link.md",
                "linked/bob.md", "knowledge", "knowledge/missing.md"):
        assert file_inside(base, rel) is None, rel
