"""What rt-segment and rt-eval share for fleets of recorded drives (--drives, --ray, --out-dir).

The library is runtime/fleet.py; this module adds the flags, refuses the ones a fleet does not
take, runs it and prints the per-drive and overall lines.
"""
from runtime import fleet
from runtime.cli.common import engine_inputs
from runtime.errors import UserError
from runtime.jsonfile import Inputs, check_output

RETRIES_MAX = 20


def add_fleet_args(parser, drives_group=None):
    """--drives (into ``drives_group`` when given: a mutually exclusive source group), --ray,
    --out-dir, --retries."""
    (drives_group or parser).add_argument(
        "--drives", nargs="+", metavar="DRIVE",
        help="many recorded drives: a folder of drives, a .txt list, or the drives themselves "
             "(videos, image folders, Cityscapes-format folders with labels); one report "
             "(docs/serving.md)")
    group = parser.add_argument_group("fleets of drives (with --drives)")
    group.add_argument("--ray", metavar="auto|ADDRESS",
                       help="run one task per drive on a Ray cluster (default: one after another)")
    group.add_argument("--out-dir", metavar="DIR",
                       help="per-drive results (DIR/drives/NAME.json) and DIR/fleet.json")
    group.add_argument("--retries", type=int, default=fleet.RETRIES, metavar="N",
                       help="Ray: runs of a drive whose worker died (default {})".format(fleet.RETRIES))


def check_fleet_args(args, refused=()):
    """Refuse fleet flags without --drives and, with it, ``refused`` (flag, value) pairs."""
    if not args.drives:
        for flag, value in (("--ray", args.ray), ("--out-dir", args.out_dir)):
            if value:
                raise UserError("{} needs --drives".format(flag))
        return False
    for flag, value in refused:
        if value:
            raise UserError("{} does not apply to --drives (each drive gets DIR/drives/NAME.json; "
                            "the fleet's report is --report / DIR/fleet.json)".format(flag))
    if not args.out_dir:
        raise UserError("--drives needs --out-dir DIR (where each drive's result is written)")
    if not 0 <= args.retries <= RETRIES_MAX:
        raise UserError("--retries must be between 0 and {}".format(RETRIES_MAX))
    return True


def run_fleet_cli(args, report_path=None, report_flag="--report", require_labels=False, split=None):
    """Run the fleet the flags describe, print its lines; returns the exit code (1 when a drive
    failed). The report path is checked before any work: never the engine or a drive."""
    drives = fleet.find_drives(args.drives)
    if report_path:
        inputs = engine_inputs(Inputs(), args.engine)
        for drive in drives:
            inputs.add(drive.path, "drive")
        report_path = check_output(report_path, report_flag, inputs)
    if require_labels:
        unlabelled = [d.name for d in drives if d.kind != "labelled"]
        if unlabelled:
            raise UserError("rt-eval --drives needs labelled drives (Cityscapes-format folders); "
                            "without labels: {} (rt-segment --drives streams them)".format(
                                ", ".join(unlabelled)))
    report = fleet.run_fleet(args.engine, drives, args.out_dir, ray_address=args.ray, split=split,
                             backend=args.backend, threads=args.threads,
                             verify=not args.no_verify, retries=args.retries, quiet=args.quiet)
    if report_path:
        from runtime.jsonfile import write_atomic
        write_atomic(report_path, report, indent=2)
    print_report(report)
    return 1 if report["overall"]["failed"] else 0


def _pct(value):
    return "n/a" if value is None else "{:.2f} %".format(100 * value)


def print_report(report):
    for entry in report["drives"]:
        if "error" in entry:
            print("{:<24} FAILED: {}".format(entry["name"], entry["error"]))
            continue
        parts = ["{:<24} {:>6} frames  {:6.1f} FPS".format(entry["name"], entry["frames"],
                                                            entry["fps"] or 0.0)]
        if "miou" in entry:
            parts.append("mIoU {}".format(_pct(entry["miou"])))
        if "outlier" in entry:
            parts.append("outlier AP {}".format(_pct(entry["outlier"]["ap"])))
        if "forecast" in entry:
            parts.append("forecast gain {:+.2f} pp".format(entry["forecast"]["gain_over_copy_last_pp"]))
        print("  ".join(parts))
    overall = report["overall"]
    parts = ["overall: {}/{} drives, {} frames, {:.1f} FPS ({})".format(
        overall["completed"], overall["drives"], overall["frames"], overall["fps"] or 0.0,
        report["runner"])]
    if "miou" in overall:
        parts.append("mIoU {}".format(_pct(overall["miou"])))
    if "outlier" in overall:
        parts.append("outlier AP {}".format(_pct(overall["outlier"]["ap"])))
    if "forecast" in overall:
        parts.append("forecast gain {:+.2f} pp".format(overall["forecast"]["gain_over_copy_last_pp"]))
    print("  ".join(parts))
