"""`python -m fedprice` runs the CLI."""

from fedprice.cli import run

run()
