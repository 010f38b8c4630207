"""The command-line parser of every entry point: HfArgumentParser over dataclasses, with one-line errors and strict
booleans. Light to import (no torch), so that commands that train nothing start fast."""

from __future__ import annotations

import argparse
import sys

from transformers.hf_argparser import HfArgumentParser, string_to_bool

from common.errors import UserError


def strict_bool(value: str | bool) -> bool:
    """True/False/true/false/1/0 and nothing else (the study's `type=bool` made "False" true)."""
    if isinstance(value, bool):
        return value
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False (or 1/0), got {value!r}")


class _Parser(HfArgumentParser):
    """HfArgumentParser whose errors are one line (`error: ...`) and exit code 2, without the usage block."""

    def error(self, message):
        raise UserError(message)


def make_parser(types: list, **parser_kwargs) -> HfArgumentParser:
    parser = _Parser(types, allow_abbrev=False, **parser_kwargs)
    for action in parser._actions:  # stricter booleans than HF's yes/no/t/f/y/n
        if action.type is string_to_bool and not isinstance(action.default, str):  # str defaults: "no"/"yes"
            action.type = strict_bool
    return parser


def parse_dataclass(cls: type, argv: list[str] | None, **parser_kwargs):
    """One dataclass of arguments from `argv` (default sys.argv[1:]); unknown flags are a UserError."""
    parser = make_parser([cls], **parser_kwargs)
    args, unknown = parser.parse_args_into_dataclasses(args=list(sys.argv[1:] if argv is None else argv),
                                                       return_remaining_strings=True)
    if unknown:
        raise UserError(f"unrecognized arguments: {' '.join(unknown)} (see --help)")
    return args
