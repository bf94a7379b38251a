"""`python -m cli` = `bin/derivs`: the derivs command line (cli/main.py)."""

from cli.main import cli

cli(prog_name="derivs")
