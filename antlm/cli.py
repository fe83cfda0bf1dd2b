"""The `antlm` command: prepare, train, demo.

Every user-facing failure ends as one line on stderr and exit code 2; tracebacks are for bugs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from antlm.errors import UserError


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's default prints the whole usage block
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML preset (see configs/)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set schedule=4_clm+16_mlm+4_clm (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="antlm", description="AntLM pretraining: alternating causal and masked LM.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    prepare = commands.add_parser("prepare", help="check the corpus, train the tokenizer, build the token store")
    _add_config_args(prepare)

    train = commands.add_parser("train", help="pretrain a model with a CLM/MLM schedule")
    _add_config_args(train)
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its newest valid checkpoint")
    train.add_argument("--force", action="store_true", help="replace a run that already exists in --out")

    demo = commands.add_parser("demo", help="train a CLM baseline and an AntLM model on the embedded corpus and compare")
    demo.add_argument("--out", default="runs/demo", help="directory for the two runs (default runs/demo)")
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    demo.add_argument("--force", action="store_true", help="replace earlier demo runs in --out")
    return parser


def run(args: argparse.Namespace) -> int:
    from antlm.config import build_config

    if args.command == "demo":
        from antlm.demo import run_demo

        run_demo(Path(args.out), args.overrides, force=args.force, log=_log)
        return 0
    cfg = build_config(args.config, args.overrides)
    if args.command == "prepare":
        from antlm.train.setup import prepare_command

        prepare_command(cfg, log=_log)
        return 0
    if args.resume and args.force:
        raise UserError("--resume and --force exclude each other")
    from antlm.train.loop import train

    result = train(cfg, Path(args.out), resume=args.resume, force=args.force, log=_log)
    _log(f"done: {result['steps']}/{result['total_steps']} steps, final train loss {result['final_loss']:.4f}, run in {result['out']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except UserError as err:
        sys.stderr.write(f"antlm: error: {err}\n")
        return 2
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        sys.stderr.write(f"antlm: error: {err.strerror or err}{where}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("antlm: interrupted\n")
        return 130
