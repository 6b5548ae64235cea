"""rt-triton: write a Triton Inference Server model repository for an engine.

    rt-triton engines/swiftnet-rn18_fp32.onnx models/
    rt-triton engines/swiftnet-rn18_fp16.plan models/ --instances 2
    tritonserver --model-repository models/

The library is runtime/serving/triton.py (docs/serving.md says how to serve the repository on
a GPU server and on a Jetson).
"""
import sys

from runtime.backends import BACKEND_HELP, check_backend
from runtime.cli.common import (OneLineParser, add_common_args, add_verify_arg, check_threads,
                                run_cli)
from runtime.serving import triton


def build_parser():
    parser = OneLineParser(prog="rt-triton", description=__doc__.splitlines()[0])
    parser.add_argument("engine", help="engine (.onnx / .plan) with its manifest, or a forecast "
                                       "bundle (its folder or forecast.json)")
    parser.add_argument("repository", help="model repository folder (created if missing)")
    parser.add_argument("--name", help="model name (default: the engine's file name)")
    parser.add_argument("--instances", type=int, default=1, metavar="N",
                        help="model instances (processes) serving requests in parallel (default 1)")
    parser.add_argument("--max-batch", type=int, default=8, metavar="N",
                        help="most queued requests handed to an instance at once (dynamic "
                             "batching; default 8)")
    parser.add_argument("--backend", metavar="NAME",
                        help="swiftrt backend inside Triton: " + BACKEND_HELP)
    parser.add_argument("--threads", type=int, metavar="N", help="inference threads per instance")
    parser.add_argument("--python-path", metavar="DIR",
                        help="folder holding swiftrt's runtime package, for a Triton whose Python "
                             "does not have swiftrt installed")
    add_verify_arg(parser)
    add_common_args(parser)
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    check_backend(args.backend)
    check_threads(args.threads)
    written = triton.write_repository(
        args.engine, args.repository, name=args.name, instances=args.instances,
        max_batch=args.max_batch, backend=args.backend, threads=args.threads,
        python_path=args.python_path, verify=not args.no_verify)
    if not args.quiet:
        for folder in written:
            print("wrote {}".format(folder))
    return 0


def entry():
    sys.exit(run_cli(main, prog="rt-triton"))


if __name__ == "__main__":
    entry()
