"""``orgctl chart`` (orgctl/cli/charts.py): the org chart as Mermaid, DOT and an SVG drawn with no browser and no
network, for one revision or the change since ``--base``, on the template org in a real git repo."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from orgctl.cli.charts import Chart, layout, to_dot, to_mermaid, to_svg
from orgctl.gitops.planning import Action
from tests.conftest import commit_all, git, rebind_workflows, run_cli

SVG = "{http://www.w3.org/2000/svg}"


def nodes(svg: str) -> dict[str, float]:
    """``{name: y of its box}`` of an SVG chart (parsed as XML: it must be well-formed)."""
    root = ET.fromstring(svg)
    return {g.get("data-name"): float(g.find(f"{SVG}rect").get("y"))  # type: ignore[union-attr, arg-type]
            for g in root.iter(f"{SVG}g")}


def test_the_svg_chart_shows_alice_above_bob_and_carol(org: Path, tmp_path: Path) -> None:
    out = tmp_path / "org.svg"
    result = run_cli("chart", str(org), "--format", "svg", "--out", str(out))
    assert result.exit_code == 0, result.output
    svg = out.read_text()
    ys = nodes(svg)
    assert set(ys) == {"alice", "bob", "carol"} and ys["alice"] < ys["bob"] == ys["carol"]
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing to fetch
    assert "<script" not in svg and "href" not in svg


def test_mermaid_and_dot_of_a_revision(org: Path) -> None:
    mermaid = run_cli("chart", str(org))
    assert mermaid.exit_code == 0 and mermaid.output.startswith("flowchart TD")
    assert "alice --> bob" in mermaid.output and "alice --> carol" in mermaid.output
    dot = run_cli("chart", str(org), "--format", "dot", "-r", "HEAD")
    assert dot.exit_code == 0 and dot.output.startswith("digraph org {")
    assert '"alice" -> "bob";' in dot.output and 'label="bob\\nengineer"' in dot.output


def test_the_change_since_base_marks_a_retirement(org: Path) -> None:
    """Carol retired on a branch: the chart of the change marks her ``-`` (dashed in the SVG) and keeps alice's
    link to bob as it was."""
    spec_files = [p for p in git(org, "ls-files", "animas/carol").split() if "/memory/" not in p]
    git(org, "rm", "-q", *spec_files)
    rebind_workflows(org, "carol")
    commit_all(org, "retire carol")
    mermaid = run_cli("chart", str(org), "--base", "HEAD~1")
    assert mermaid.exit_code == 0, mermaid.output
    assert "class carol retire" in mermaid.output and "alice --> bob" in mermaid.output
    svg = run_cli("chart", str(org), "--base", "HEAD~1", "--format", "svg").output
    carol = next(g for g in ET.fromstring(svg).iter(f"{SVG}g") if g.get("data-name") == "carol")
    assert carol.find(f"{SVG}rect").get("stroke-dasharray") == "5 5"  # type: ignore[union-attr]


def test_every_format_escapes_what_it_draws() -> None:
    """Names and roles come from the spec; whatever they hold is text in every format, never markup."""
    hostile = '<script>alert(1)</script>" onload="x'
    chart = Chart({"alice": hostile, "bob": "engineer"}, [("alice", "bob", False)], {"bob": Action.HIRE})
    svg = to_svg(chart, links=True, captions={"bob": hostile})
    root = ET.fromstring(svg)
    assert not list(root.iter(f"{SVG}script")) and not any("onload" in el.attrib for el in root.iter())
    assert hostile[:20] in "".join(root.itertext())
    assert "<script>" not in to_mermaid(chart) and "#lt;script#gt;" in to_mermaid(chart)
    assert 'alert(1)</script>\\" onload=\\"x' in to_dot(chart)  # the quotes cannot end the label


def test_the_layout_centres_a_parent_over_its_reports() -> None:
    chart = Chart({"a": "", "b": "", "c": "", "d": ""}, [("a", "b", False), ("a", "c", False), ("c", "d", False)])
    place = layout(chart)
    assert place["a"][1] == 0 and place["b"][1] == place["c"][1] == 1 and place["d"][1] == 2
    assert place["a"][0] == (place["b"][0] + place["c"][0]) / 2


def test_bad_input_is_a_clear_error_without_a_traceback(org: Path, tmp_path: Path) -> None:
    fmt = run_cli("chart", str(org), "--format", "png")
    assert fmt.exit_code != 0 and "'png' is not one of" in fmt.output and "Traceback" not in fmt.output
    rev = run_cli("chart", str(org), "-r", "no-such-rev")
    assert rev.exit_code != 0 and "no-such-rev" in rev.output and "Traceback" not in rev.output
    assert not list(tmp_path.glob("*.svg"))
