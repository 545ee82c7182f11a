"""The ``spmvtune`` command line."""
import click


@click.group()
@click.version_option(package_name="spmvtune")
def main():
    """spmvtune: sparse matrix-vector products tuned to this machine."""
