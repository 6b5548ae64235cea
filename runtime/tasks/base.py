"""What every model family's Python side answers (runtime.tasks.Task), with the defaults of a
family that has nothing beyond a class map (segmentation).

The pipeline, multicam, the report, the visualizer and the CLIs call these hooks on the
family of the engine they run (runtime.tasks.for_engine) instead of testing its task name,
so that a new family is one more module in runtime/tasks/ and one line in its table.
"""
from runtime.eval_common import segmentation_lines
from runtime.visualize import Visualizer


class Task(object):
    """One model family: its per-frame result fields, counters, report block and views.

    name: the manifest's ``task``; report_key: the block its counters fill in the run
    report (``summary()[report_key]``), None when it has none.
    """

    name = None
    report_key = None

    def read_frame(self, engine, result, outputs):
        """Fill the family's fields of ``result`` (runtime.result.Result) from the engine's
        raw ``outputs`` (the class map is already there)."""

    def counter(self, engine, options):
        """An object with ``add(result)`` and ``summary()`` counting this family's frames for
        the report block ``report_key`` (None: nothing to count). ``options``: a dict of
        the run's family options (e.g. ``outlier_threshold``), None values meaning the
        manifest's defaults."""
        return None

    def visual_extras(self, result):
        """Keyword arguments of Visualizer.render for this frame beyond frame and class map."""
        return {"details": result.details} if result.details is not None else {}

    def report_lines(self, block):
        """Lines of the printed run summary for this family's report block."""
        return []

    def add_arguments(self, group):
        """Add the family's command-line flags (rt-segment's output group) to ``group``."""

    def options(self, args):
        """The family's options from parsed flags: a dict (see ``counter``, ``visualizer``)."""
        return {}

    def check_options(self, options):
        """Refuse option values no engine could take (UserError), before opening one."""

    def check_engine_options(self, options, engine, task):
        """Refuse this family's options for an engine of family ``task`` that ignores them."""

    def open_options(self, options):
        """Keyword arguments of runtime.open_engine that this family's options ask for."""
        return {}

    def visualizer(self, manifest, options, **common):
        """The picture drawer of this family's engines. ``common``: Visualizer's ``mode``,
        ``alpha``, ``legend``, ``hud``; ``options``: the run's family options."""
        return Visualizer(manifest, **common)

    def saved_images(self, result):
        """(file suffix, image) pairs rt-segment --save-frames writes beside a frame's labels."""
        return []

    def add_eval_arguments(self, parser):
        """Add the family's rt-eval flags to ``parser``."""

    def eval_options(self, args):
        """The family's rt-eval options from parsed flags, checked: a dict."""
        return {}

    def eval_metric(self, engine, options):
        """rt-eval's extra score of this family, scored image by image (an object with
        ``add(result, label, label_path, ignore_id)`` -> label and ``summarize(result)``), or
        None. ``options``: rt-eval's family options."""
        return None

    def evaluate(self, engine_path, data, split, options, **common):
        """rt-eval's result when this family is not scored image by image (a forecast
        bundle on sequences); None: runtime.evaluation.evaluate_segmentation scores it."""
        return None

    def eval_lines(self, result):
        """rt-eval's printed lines for a result of this family."""
        return segmentation_lines(result)

    # -- rt-ros2 (runtime/ros2_node.py's RosPublisher ``publisher``) -------------------------

    def ros_topics(self, engine, settings):
        """The family's result topics (``~/<name>``) beside ~/class_map for node ``settings``."""
        return []

    def ros_threshold(self, engine, settings):
        """The decision threshold the node uses and reports (None: the family has none)."""
        return None

    def ros_class_map(self, result):
        """The class map ~/class_map publishes for a frame (None: none this frame)."""
        return result.class_map

    def ros_publish(self, publisher, result, header_in, header, sized):
        """Publish the family's topics of a frame. ``header``: the input's header copied;
        ``sized(values, fill, nearest=True)``: a map at the size the node publishes."""
