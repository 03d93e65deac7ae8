"""`python -m pipeline.cli ...` is `lstmpipe ...`."""

from pipeline.cli.main import main

main()
