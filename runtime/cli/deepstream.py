"""rt-deepstream: write the Gst-nvinfer configuration of a deepstream-form engine.

    rt-export --arch swiftnet-rn18 --checkpoint ckpt.pt --input deepstream -o engines/rn18_ds.onnx
    rt-deepstream engines/rn18_ds.onnx nvinfer_rn18.txt     # + nvinfer_rn18.labels.txt

The library is runtime/deepstream.py (docs/serving.md, "DeepStream").
"""
import sys

from runtime.cli.common import OneLineParser, add_common_args, run_cli
from runtime.deepstream import write_nvinfer_config


def build_parser():
    parser = OneLineParser(prog="rt-deepstream", description=__doc__.splitlines()[0])
    parser.add_argument("engine", help="a deepstream-form engine (.onnx or .plan) with its manifest")
    parser.add_argument("config", help="the nvinfer configuration file to write (.txt)")
    parser.add_argument("--labels", help="labels file to write (default: <config>.labels.txt)")
    add_common_args(parser)
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    config, labels = write_nvinfer_config(args.engine, args.config, args.labels)
    if not args.quiet:
        print("wrote {} and {}".format(config, labels))
    return 0


def entry():
    sys.exit(run_cli(main, prog="rt-deepstream"))


if __name__ == "__main__":
    entry()
