"""`python -m touchline.cli`: the `touchline` command."""

from touchline.cli import main

main()
