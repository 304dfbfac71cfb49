"""The CLI's subcommands: one module each with ``add_arguments(parser)`` and ``run(args)``,
a thin layer over the Python API; ``cherrypick.cli`` finds them and turns errors into exit codes."""
