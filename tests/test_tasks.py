"""One home per model family in Python (runtime/tasks/, issue 26): the generic modules ask the
engine's family for its fields, counters, report lines, views, flags and metrics, so that a new
family is a module in runtime/tasks/ and none of them changes."""
import ast
import os
import sys

from runtime import manifest, tasks
from tests.conftest import REPO

# The modules that run every family: they must not name one in code (docstrings, help texts and
# messages may, to explain themselves).
GENERIC = ("runtime/pipeline.py", "runtime/multicam.py", "runtime/report.py", "runtime/visualize.py",
           "runtime/outputs.py", "runtime/evaluation.py", "runtime/cli/segment.py", "runtime/cli/eval.py")
FAMILY_WORDS = ("outlier", "forecast")
_STRING = ast.Constant if sys.version_info >= (3, 8) else ast.Str


def _family_names(path):
    """Identifiers and word-like string literals (keys, topic names) that name a family."""
    tree = ast.parse(open(path).read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            text = node.id
        elif isinstance(node, ast.Attribute):
            text = node.attr
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            text = node.name
        elif isinstance(node, ast.alias):
            text = node.asname or node.name
        elif isinstance(node, ast.keyword):
            text = node.arg or ""
        elif isinstance(node, _STRING):
            text = node.value if sys.version_info >= (3, 8) else node.s
            if not isinstance(text, str) or " " in text:
                continue
        else:
            continue
        if any(word in text.lower() for word in FAMILY_WORDS):
            found.append("{}:{} {}".format(path, getattr(node, "lineno", "?"), text))
    return found


def test_generic_modules_name_no_family():
    found = [hit for rel in GENERIC for hit in _family_names(os.path.join(REPO, rel))]
    assert found == []


def test_every_manifest_task_has_its_family():
    for name in manifest.TASKS:
        if name == "forecast_stage":   # a bundle's part, never run alone
            continue
        assert tasks.for_name(name).name == name
    assert tasks.for_name("forecast_stage") is tasks.for_name(None) is tasks.for_name("segmentation")
    keys = [task.report_key for task in tasks.ALL if task.report_key]
    assert len(keys) == len(set(keys)), "two families fill the same report block"


def test_each_family_prints_its_own_report_block():
    from runtime.report import format_summary
    base = {"frames": {"read": 2, "processed": 2, "dropped": 0, "corrupt": 0}, "fps": {"processed": 1.0},
            "wall_s": 2.0, "latency_ms": {}, "source": {"uri": "v.mp4"}, "exit": {"reason": "end_of_stream"}}
    outliers = {"threshold": 0.5, "frames": 2, "frames_with_outliers": 1,
                "pixels_per_frame": {"mean": 1.5, "max": 3}, "fraction_per_frame": {"mean": 0.1, "max": 0.2}}
    text = format_summary(dict(base, outliers=outliers))
    assert "outliers (score > 0.5): 1 of 2 frames" in text and "forecast" not in text
    assert "outliers" not in format_summary(base)
