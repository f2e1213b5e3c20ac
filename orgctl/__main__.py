"""``python -m orgctl``: the CLI (how a detached controller is started with this interpreter)."""

from orgctl.cli.main import main

main()
