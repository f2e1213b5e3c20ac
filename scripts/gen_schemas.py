"""Write the JSON Schemas of org.yaml and anima.yaml into the org template: org-template/.schemas/.

``orgctl init`` copies them into every new org (:mod:`orgctl.desired.schemas`);
tests/unit/test_schemas.py fails when they are out of date with the models. Run:
``.venv/bin/python scripts/gen_schemas.py``.
"""

from __future__ import annotations

from pathlib import Path

from orgctl.desired.schemas import SCHEMAS, SCHEMAS_DIR, render

TARGET = Path(__file__).resolve().parent.parent / "org-template" / SCHEMAS_DIR


def files() -> dict[Path, str]:
    """Each schema file's path under :data:`TARGET`, with the text it should hold."""
    return {TARGET / schema: render(spec) for spec, (_, schema) in SCHEMAS.items()}


if __name__ == "__main__":
    TARGET.mkdir(exist_ok=True)
    for path, text in files().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
