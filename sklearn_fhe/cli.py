"""The ``sklearn-fhe`` command line (also ``python -m sklearn_fhe``).

``sklearn-fhe run MODEL_DIR --keys KEYS --input PAYLOAD --output RESULT`` runs a saved model's
server part on a client's encrypted inputs, file to file (a batch job on the server side).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence


def run_command(args: argparse.Namespace) -> int:
    from .deployment import Server

    with Server(args.model_dir) as server:
        result = server.run(Path(args.input).read_bytes(), Path(args.keys).read_bytes())
    Path(args.output).write_bytes(result)
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line's parser: one subcommand per task."""
    main = argparse.ArgumentParser(prog="sklearn-fhe", description=__doc__.split("\n\n")[0])
    commands = main.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a saved model's server part on encrypted inputs")
    run.add_argument("model_dir", help="directory written by sklearn_fhe.deployment.save")
    run.add_argument("--keys", required=True, help="the client's evaluation keys (file)")
    run.add_argument("--input", required=True, help="encrypted inputs (file)")
    run.add_argument("--output", required=True, help="where to write the encrypted results")
    run.set_defaults(handler=run_command)
    return main


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` and run the subcommand; errors of the inputs exit 2 with one line."""
    from .deployment import ArtifactError, PayloadError

    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ArtifactError, PayloadError, FileNotFoundError) as error:
        print(f"sklearn-fhe {args.command}: {error}", file=sys.stderr)
        return 2
