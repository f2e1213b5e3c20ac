"""Entry point of the model server child: ``python -m orgctl.llm.serving <llama_cpp.server args>``.

A thin wrapper around ``llama_cpp.server`` that first ties its life to its
parent's (``PR_SET_PDEATHSIG``), so a killed gateway never leaves an orphaned
server holding 100+ MB and a port.
"""

from __future__ import annotations

import runpy
import sys

from orgctl.processes import die_with_parent


def main() -> None:
    die_with_parent()
    sys.argv = ["llama_cpp.server", *sys.argv[1:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
