"""One home per model family on the Python side (the core's is runtime/native/src/tasks/).

Each family's module holds what only that family has: result fields, counters, report lines,
views and their flags. Callers ask ``for_engine(engine)`` / ``for_manifest(manifest)`` for
the family's Task (runtime.tasks.base) and call its hooks; ``ALL`` lists every family in the
order the report prints them. A family the table does not know (``forecast_stage``, a test
double without a manifest) behaves as segmentation.
"""
from runtime.tasks import forecast, outlier, segmentation

ALL = (segmentation.TASK, outlier.TASK, forecast.TASK)
_BY_NAME = dict((task.name, task) for task in ALL)


def for_name(name):
    """The Task of a manifest's ``task`` name (unknown or None: segmentation)."""
    return _BY_NAME.get(name, segmentation.TASK)


def for_manifest(manifest):
    """The Task of a runtime.manifest.Manifest (None: segmentation)."""
    return for_name(getattr(manifest, "task", None))


def for_engine(engine):
    """The Task of an engine (runtime.engine_base.EngineBase), from its manifest."""
    return for_manifest(engine.manifest)


def add_arguments(group):
    """Every family's command-line flags (argparse group)."""
    for task in ALL:
        task.add_arguments(group)


def _merged(method, value):
    """Every family's ``method(value)`` dicts merged into one (each family reads its own keys)."""
    merged = {}
    for task in ALL:
        merged.update(getattr(task, method)(value))
    return merged


def options(args):
    """Every family's options from parsed flags, checked (one dict: each family reads its own)."""
    merged = _merged("options", args)
    for task in ALL:
        task.check_options(merged)
    return merged


def check_engine_options(options, engine):
    """Refuse family options that ``engine``'s family does not take (UserError)."""
    task = for_engine(engine)
    for each in ALL:
        each.check_engine_options(options, engine, task)


def add_eval_arguments(parser):
    """Every family's rt-eval flags."""
    for task in ALL:
        task.add_eval_arguments(parser)


def eval_options(args):
    """Every family's rt-eval options from parsed flags, checked (one dict)."""
    return _merged("eval_options", args)


def open_options(options):
    """Keyword arguments of runtime.open_engine that the family options ask for."""
    return _merged("open_options", options)


def visualizer(manifest, options=None, **common):
    """The picture drawer for an engine's Manifest (its family's Visualizer). ``common``:
    runtime.visualize.Visualizer's ``mode``, ``alpha``, ``legend``, ``hud``."""
    return for_manifest(manifest).visualizer(manifest, options or {}, **common)
