"""`python -m aqnet` runs the CLI."""

from aqnet.cli import main

main()
