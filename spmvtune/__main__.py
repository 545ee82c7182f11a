"""``python -m spmvtune`` = the ``spmvtune`` command."""
from .cli import main

main(prog_name="spmvtune")
