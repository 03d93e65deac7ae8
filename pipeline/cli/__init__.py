"""The command line, `lstmpipe`: one Typer app (`main`), its shared options, the cluster and job commands."""
