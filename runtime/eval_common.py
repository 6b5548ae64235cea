"""What every family's rt-eval shares: the --limit check, the progress count, percentages and the
printed segmentation lines (runtime.evaluation and each family's evaluation import these)."""
import sys

from runtime.errors import UserError


def check_limit(limit):
    """``limit`` (first N images or sequences) is None or a positive count: 0 and -1 would
    silently score every image or all but the last."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UserError("--limit must be a positive number of images (got {})".format(limit))


def progress_printer(total, quiet):
    """A callable that counts evaluated samples on stderr ("evaluated N/TOTAL"), silent if ``quiet``."""
    state = {"done": 0}

    def tick():
        state["done"] += 1
        if not quiet and (state["done"] == total or state["done"] % max(1, total // 20) == 0):
            sys.stderr.write("\revaluated {}/{}".format(state["done"], total))
            if state["done"] == total:
                sys.stderr.write("\n")
            sys.stderr.flush()
    return tick


def pct(value):
    return "n/a" if value is None else "{:.2f} %".format(100 * value)


def segmentation_lines(result, extra=()):
    """rt-eval's printed result for an engine scored image by image; ``extra``: a family's
    lines, printed before the reference's."""
    lines = ["mIoU {:.2f} %   pixel accuracy {:.2f} %   ({} images)".format(
        100 * result["miou"], 100 * result["pixel_accuracy"], result["images"])]
    for name, value in result["per_class_iou"].items():
        lines.append("  {:<14} {}".format(name, "  n/a" if value is None else "{:6.2f}".format(100 * value)))
    lines.extend(extra)
    if "reference" in result:
        ref = result["reference"]
        lines.append("reference {}: mIoU {:.2f} %, agreement {:.3f} %, drop {:+.2f} pp".format(
            ref["engine"], 100 * ref["miou"], 100 * ref["agreement"], ref["miou_drop_pp"]))
    return lines
