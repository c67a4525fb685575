"""`python -m accelsim` runs the CLI."""

from accelsim.cli import main

main()
