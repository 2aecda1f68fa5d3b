"""Benchmarks: `python -m tools.bench <name> [flags]`. Each benchmark is one module here that defines
`cli(parser)` (its own flags) and `run(args) -> int`, so adding one touches one file."""
