"""What every command line of the project shares: the parser class, its help formatter, the general flags
(``--config``, ``--log-level``, ``--version``) and deprecated flag aliases.

Why one module: ``ia-live``, ``ia-sub``, ``train.*`` and ``tools.*`` grew their own parsers, and with them
two ways to print defaults (``--help`` showed some twice), two ways to fail (usage block vs one line) and
no way to keep an old flag name working while users move to the new one. Every entry point now builds
its parser with `make_parser` and parses with `parse_args`, so these behave the same everywhere; the flag
naming scheme and the list of aliases are in docs/cli.md.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from core.errors import EXIT_USAGE, UserError, one_line

__all__ = ["CliError", "HelpFormatter", "Parser", "make_parser", "add_general_flags", "add_alias", "parse_args",
           "parse_or_exit",
           "package_version", "setup_logging", "LOG_LEVELS", "positive_int", "positive_float", "non_negative_float"]

LOG_LEVELS = ("debug", "info", "warning", "error")


def positive_int(value: str) -> int:
    """argparse ``type``: an integer >= 1 (the message names the value, argparse names the flag)."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def positive_float(value: str) -> float:
    """argparse ``type``: a number > 0."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return x


def non_negative_float(value: str) -> float:
    """argparse ``type``: a finite number >= 0."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}") from None
    if not x >= 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}")
    return x


def unit_interval(value: str) -> float:
    """argparse ``type``: a number in [0, 1] (a share or probability)."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value!r}") from None
    if not 0.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value!r}")
    return x


class CliError(UserError):
    """A bad command line or config file: one line on stderr, exit status 2."""

    code = EXIT_USAGE


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written (module docstrings with examples) and appends ``(default: X)`` once: not when the help text already states its default, not for flags
    whose default is None/False (nothing to say), not for positionals."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or "default" in text.lower() or action.default in (None, False)
                or action.default is argparse.SUPPRESS or action.nargs == 0):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (`CliError`, which the entry points print and exit 2 with)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        raise CliError(f"{message} (see {self.prog} --help)")


def make_parser(prog: str, description: str | None = None, *, general: bool = True, **kwargs: Any) -> Parser:
    """The project's parser for entry point ``prog``, with the general flags unless ``general`` is False."""
    parser = Parser(prog=prog, description=description, **kwargs)
    if general:
        add_general_flags(parser)
    return parser


def package_version() -> str:
    """The installed distribution's version (pyproject.toml), or ``unknown`` when run from a bare tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("integralaction-live")
    except PackageNotFoundError:
        return "unknown"


def add_general_flags(parser: argparse.ArgumentParser) -> None:
    """``--config FILE``, ``--log-level``, ``--version``: the same three flags on every entry point."""
    group = parser.add_argument_group("general")
    group.add_argument("--config", metavar="FILE",
                       help="TOML file of flag values (keys are flag names, dashes or underscores); "
                            "flags given on the command line win")
    group.add_argument("--log-level", default="warning", choices=LOG_LEVELS, help="diagnostic log level")
    group.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")


# -- deprecated aliases ---------------------------------------------------------------------------------------


class _Deprecated(argparse.Action):
    """An old flag name: warns once on stderr, then does exactly what the new flag's action does."""

    def __init__(self, option_strings: list[str], dest: str, target: argparse.Action, new: str,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=target.nargs, const=target.const, type=target.type,
                         choices=target.choices, metavar=target.metavar, default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS)
        self.target, self.new = target, new

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        warn_deprecated(parser.prog, option_string or self.option_strings[0], self.new)
        self.target(parser, namespace, values, self.new)


def warn_deprecated(prog: str, old: str, new: str) -> None:
    print(f"{prog}: warning: {old} is deprecated, use {new} (the old name will be removed in the next release)",
          file=sys.stderr, flush=True)


def add_alias(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Keep ``old`` working as a hidden, deprecated name of the already-added flag ``new``."""
    target = parser._option_string_actions[new]  # noqa: SLF001 - argparse has no public lookup
    parser.add_argument(old, dest=target.dest, action=_Deprecated, target=target, new=new)


# -- config files ---------------------------------------------------------------------------------------------


def _chosen_parsers(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[argparse.ArgumentParser]:
    """The parser and, for a tool with subcommands, the subcommand's parser named in ``argv``."""
    found = [parser]
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for word in argv:
                if word in action.choices:
                    found.append(action.choices[word])
                    break
    return found


def _convert(action: argparse.Action, key: str, value: Any, path: Path) -> Any:
    def one(v: Any) -> Any:
        if action.type is not None and not isinstance(v, bool):
            try:
                v = action.type(v if isinstance(v, str) else str(v))  # flag types parse strings
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                raise CliError(f"config {path}: {key} = {v!r}: {one_line(exc)}") from None
        if action.choices is not None and v not in action.choices:
            raise CliError(f"config {path}: {key} = {v!r} is not one of {', '.join(map(str, action.choices))}")
        return v

    if action.nargs == 0:  # store_true / store_false / store_const / --x/--no-x
        if not isinstance(value, bool):
            raise CliError(f"config {path}: {key} is a switch, give true or false, got {value!r}")
        if isinstance(action, argparse.BooleanOptionalAction):
            return value
        return action.const if value else action.default
    if action.nargs in ("*", "+") or isinstance(action.nargs, int) and action.nargs > 1:
        if not isinstance(value, list):
            raise CliError(f"config {path}: {key} takes a list, got {value!r}")
        return [one(v) for v in value]
    if isinstance(value, (list, dict)):
        raise CliError(f"config {path}: {key} takes one value, got {value!r}")
    return one(value)


def load_config(path: str | Path) -> dict[str, Any]:
    """The TOML file's top-level table (one-line `CliError` for a missing or malformed file)."""
    import tomllib

    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise CliError(f"config file not found: {path}") from None
    except OSError as exc:
        raise CliError(f"cannot read config file {path}: {one_line(exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"config {path} is not valid TOML: {one_line(exc)}") from None
    return data


def apply_config(parser: argparse.ArgumentParser, path: str | Path, argv: Sequence[str]) -> None:
    """Make the file's values the parser's defaults, so flags on the command line override them. A key names
    a flag (``top-k`` or ``top_k``); an unknown key is an error naming it."""
    path = Path(path)
    parsers = _chosen_parsers(parser, argv)
    for key, value in load_config(path).items():
        flag = "--" + str(key).replace("_", "-")
        if flag in ("--config", "--version", "--help"):
            raise CliError(f"config {path}: key {key!r} cannot be set in a config file")
        owner = next((p for p in parsers if flag in p._option_string_actions), None)  # noqa: SLF001
        if owner is None:
            raise CliError(f"config {path}: unknown key {key!r} (no flag {flag} in {parser.prog})")
        action = owner._option_string_actions[flag]  # noqa: SLF001
        if isinstance(action, _Deprecated):
            warn_deprecated(parser.prog, f"config key {key!r}", action.new.lstrip("-"))
            action = action.target
        owner.set_defaults(**{action.dest: _convert(action, str(key), value, path)})
        action.required = False  # given by the file


# -- parsing and logging --------------------------------------------------------------------------------------


def setup_logging(level: str = "warning") -> None:
    """Diagnostics go through `logging` to stderr with rich's handler (time, level, message)."""
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
    logging.basicConfig(level=getattr(logging, level.upper()), format="%(message)s", datefmt="[%X]",
                        handlers=[handler], force=True)


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` (default ``sys.argv[1:]``) after applying ``--config FILE``; set up logging from
    ``--log-level``. Raises `CliError` (one line) for a bad command line or config file."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = Parser(prog=parser.prog, add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        apply_config(parser, known.config, argv)
    args = parser.parse_args(argv)
    if hasattr(args, "log_level"):
        setup_logging(args.log_level)
    return args


def parse_or_exit(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """`parse_args` for entry points that report errors the way argparse does: ``prog: error: ...`` (one
    line) on stderr and ``SystemExit(2)``."""
    try:
        return parse_args(parser, argv)
    except CliError as exc:
        print(f"{parser.prog}: error: {one_line(exc)}", file=sys.stderr, flush=True)
        raise SystemExit(exc.code) from None
