"""`python -m shadow` is the `shadow` command."""

from shadow.cli import main

main()
