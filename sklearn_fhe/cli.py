"""The ``sklearn-fhe`` command line (also ``python -m sklearn_fhe``).

``sklearn-fhe run MODEL_DIR --keys KEYS --input PAYLOAD --output RESULT`` runs a saved model's
server part on a client's encrypted inputs, file to file (a batch job on the server side).

``sklearn-fhe serve MODEL_DIR --host 127.0.0.1 --port 8000`` serves it over HTTP (the ``serve``
extra; see ``sklearn_fhe.deployment.http_service`` for the endpoints and limits), with
``--key-store DIR`` (key sets shared by processes and kept across restarts), ``--token-file F``
(bearer tokens), ``--ssl-keyfile/--ssl-certfile`` (HTTPS) and ``--dask-scheduler ADDRESS`` (the
circuit runs on a Dask cluster).
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


def serve_command(args: argparse.Namespace) -> int:
    try:
        from .deployment.access import Tokens
        from .deployment.http_service import ServiceLimits, serve
    except ImportError as error:
        print(f"sklearn-fhe serve: {error}", file=sys.stderr)
        return 2
    if (args.ssl_keyfile is None) != (args.ssl_certfile is None):
        print("sklearn-fhe serve: HTTPS needs both --ssl-keyfile and --ssl-certfile.",
              file=sys.stderr)
        return 2
    try:
        limits = ServiceLimits(**{name: getattr(args, name) for name in LIMITS
                                  if getattr(args, name) is not None})
        tokens = Tokens.from_file(args.token_file) if args.token_file else None
        serve(args.model_dir, host=args.host, port=args.port, limits=limits,
              log_level=args.log_level, key_store=args.key_store, tokens=tokens,
              dask_scheduler=args.dask_scheduler, ssl_keyfile=args.ssl_keyfile,
              ssl_certfile=args.ssl_certfile)
    except (ValueError, OSError, ImportError) as error:  # limits, token file, directories, port
        print(f"sklearn-fhe serve: {error}", file=sys.stderr)
        return 2
    return 0


def byte_size(text: str) -> int:
    """``"65536"``, ``"64K"``, ``"16M"`` or ``"2G"`` → bytes (powers of 1024)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    scale = units.get(text[-1:].upper(), 1)
    try:
        return int(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 65536, 64K, 16M, 2G)")


#: ``serve`` options that set a ServiceLimits field (its default when absent):
#: field → (option, type, help)
LIMITS = {
    "max_request_bytes": ("--max-request-bytes", byte_size,
                          "largest /predict body (encrypted inputs), e.g. 64M (default 64M)"),
    "max_key_upload_bytes": ("--max-key-upload-bytes", byte_size,
                             "largest /keys body, one client's evaluation keys (default 512M)"),
    "max_key_sets": ("--max-key-sets", int,
                     "most clients' key sets held, least recently used out first (default 64)"),
    "max_key_bytes": ("--max-key-bytes", byte_size, "most bytes of key sets held (default 4G)"),
    "key_ttl_s": ("--key-ttl", float,
                  "seconds after its last use that a key set is forgotten (default 3600)"),
    "workers": ("--workers", int, "threads running encrypted work (default: CPU count)"),
    "max_pending": ("--max-pending", int,
                    "most requests running or waiting; more get 503 (default 64)"),
    "max_key_sets_per_token": ("--max-key-sets-per-token", int,
                               "with --token-file: most key sets one token holds (default 16)"),
    "max_disk_key_sets": ("--max-disk-key-sets", int,
                          "with --key-store: most key sets kept on disk (default 1024)"),
    "max_disk_key_bytes": ("--max-disk-key-bytes", byte_size,
                           "with --key-store: most bytes of key sets on disk (default 64G)"),
}


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
    serve = commands.add_parser("serve", help="serve a saved model over HTTP (the serve extra)")
    serve.add_argument("model_dir", help="directory written by sklearn_fhe.deployment.save")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--key-store", metavar="DIR",
                       help="directory of key sets shared by service processes, kept across "
                            "restarts (a local disk or a shared file system)")
    serve.add_argument("--token-file", metavar="FILE",
                       help="accepted bearer tokens, one per line: requests without one get 401")
    serve.add_argument("--ssl-keyfile", metavar="FILE", help="HTTPS: the server's private key")
    serve.add_argument("--ssl-certfile", metavar="FILE", help="HTTPS: the server's certificate")
    serve.add_argument("--dask-scheduler", metavar="ADDRESS",
                       help="run the circuit on this Dask cluster, e.g. tcp://10.0.0.5:8786")
    for name, (option, kind, text) in LIMITS.items():
        serve.add_argument(option, dest=name, type=kind, help=text)
    serve.set_defaults(handler=serve_command)
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
