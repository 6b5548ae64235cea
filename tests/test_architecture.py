"""The module graph has no import circles: imports at module level and inside functions count.

A function-level import used to hide a circle is still a circle (issue 18): each module has one
job, and the CLI modules sit on top of the libraries they call.
"""
import ast
import configparser
import json
import os

from tests.conftest import REPO

PACKAGES = ("runtime", "export", "calib")


def modules():
    """{dotted name: path} of every module in our packages."""
    found = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                rel = os.path.relpath(os.path.join(folder, name), REPO)[:-len(".py")]
                dotted = rel.replace(os.sep, ".")
                found[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = \
                    os.path.join(folder, name)
    return found


def _module_level(tree):
    """Statements that run on import: the module body, into if/try blocks, not into defs."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield node
        todo.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))


def imports(path, known, own, module_level=False):
    """The modules of ours that the module at ``path`` imports (anywhere, or only on import)."""
    tree = ast.parse(open(path).read(), path)
    package = own if path.endswith("__init__.py") else own.rpartition(".")[0]
    out = set()
    for node in (_module_level(tree) if module_level else ast.walk(tree)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names = ["{}.{}".format(base, alias.name) for alias in node.names] + [base]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != own and not own.startswith(name + "."):
                out.add(name)
    return out


def find_cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def test_no_import_circles():
    known = modules()
    # a package's __init__ importing its own submodules is not a circle of two modules
    graph = dict((name, set(m for m in imports(path, known, name)
                            if not (path.endswith("__init__.py") and m.startswith(name + "."))))
                 for name, path in known.items())
    assert find_cycles(graph) == []


def test_the_device_side_never_imports_the_workstation_side():
    """runtime/ runs on the Jetson: importing it never imports export/ (torch) or calib/ (onnx).
    (rt-bench's optional PyTorch peer imports export/ when asked for, on a workstation.)"""
    known = modules()
    for name, path in known.items():
        if name.startswith("runtime"):
            bad = sorted(m for m in imports(path, known, name, module_level=True)
                         if m.startswith(("export", "calib")))
            assert bad == [], "{} imports {}".format(name, ", ".join(bad))


# Workstation code that the device image does not have, with the reason the device never needs it.
WORKSTATION_ONLY = {
    "export.scenes": "the scene generator (rt-plan checks plans on the scenes shipped in runtime/plan/check_frames)",
    "export.synth_cli": "rt-synth",
}
# The native core's test fixture exports engines with rt-export's code on the workstation; it sits
# beside the C tests it serves and is not part of the runtime.
FIXTURES = ("runtime.native.tests",)


def test_the_device_side_never_imports_the_scene_generator():
    """Not at module level and not inside a function: the generator is not on the device."""
    known = modules()
    assert set(WORKSTATION_ONLY) <= set(known)
    for name, path in known.items():
        if name.startswith("runtime") and not name.startswith(FIXTURES):
            bad = sorted(m for m in imports(path, known, name) if m in WORKSTATION_ONLY)
            assert bad == [], "{} imports {}".format(name, ", ".join(bad))


def cli_modules():
    """The modules behind the console scripts (setup.cfg), e.g. runtime.cli.bench for rt-bench."""
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return set(line.split("=", 1)[1].strip().split(":")[0] for line in lines if "=" in line)


def test_cli_modules_hold_no_logic_that_another_module_imports():
    """A CLI only parses arguments and prints: libraries, benchmarks/ and the other CLIs call the
    library functions under it (runtime.bench_run, runtime.evaluation, export.api, ...). Tests
    may drive a CLI's main()."""
    known = modules()
    clis = cli_modules()
    assert clis <= set(known)
    importers = dict(known)
    folder = os.path.join(REPO, "benchmarks")
    for name in os.listdir(folder):
        if name.endswith(".py"):
            importers["benchmarks." + name[:-len(".py")]] = os.path.join(folder, name)
    for name, path in sorted(importers.items()):
        bad = sorted(m for m in imports(path, known, name) if m in clis)
        assert bad == [], "{} imports the CLI module(s) {}".format(name, ", ".join(bad))
# -- the manifest has one owner (issue 18) --------------------------------------------------------

MANIFEST_OWNER = os.path.join("runtime", "manifest.py")
# Names that held a manifest dict where one was read by its keys: ``manifest``, ``*_manifest``
# (``fp32_manifest``, ``onnx_manifest``), ``engine.manifest``, and ``data``, the name every writer
# built one in. (``info`` is not among them: it names describe() results and checkpoint metadata,
# which share keys such as ``precision`` and ``arch`` with a manifest but are not one.)
MANIFEST_NAMES = ("manifest", "data")
# Modules that may read a dict by manifest keys, and why.
NOT_MANIFEST_READERS = {
    # looks_like_manifest probes any JSON file an output would replace (is it a manifest?);
    # runtime.manifest sits above runtime.jsonfile (it writes through it), so it cannot ask it.
    os.path.join("runtime", "jsonfile.py"): "probes arbitrary JSON for a manifest's shape",
}


def schema_top_level_keys():
    """The top-level fields docs/manifest.schema.json names (its properties and its conditional
    ``then`` blocks): what only runtime/manifest.py may index a manifest dict by."""
    with open(os.path.join(REPO, "docs", "manifest.schema.json")) as handle:
        schema = json.load(handle)
    keys = set(schema.get("properties", {})) | set(schema.get("required", []))
    for rule in schema.get("allOf", []):
        then = rule.get("then", {})
        keys |= set(then.get("properties", {})) | set(then.get("required", []))
    return keys


def _holder_name(node):
    """``manifest`` for ``manifest``, ``self.manifest``, ``engine.manifest`` and
    ``(manifest or {})``; None otherwise."""
    if isinstance(node, ast.BoolOp):
        node = node.values[0]
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_manifest_holder(node):
    name = _holder_name(node)
    return name is not None and (name in MANIFEST_NAMES or name.endswith("_manifest"))


def _string(node):
    if isinstance(node, ast.Index):  # Python < 3.9
        node = node.value
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Str):  # Python < 3.8
        return node.s
    return None


def manifest_key_reads(path, keys):
    """(line, code) of every ``holder["key"]`` and ``holder.get("key")`` (also pop/setdefault)
    where holder is named like a manifest and key is one of the schema's top-level fields."""
    tree = ast.parse(open(path).read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _is_manifest_holder(node.value):
            key = _string(node.slice)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("get", "pop", "setdefault") and node.args
              and _is_manifest_holder(node.func.value)):
            key = _string(node.args[0])
        else:
            continue
        if key in keys:
            found.append((node.lineno, "{}[{!r}]".format(_holder_name(
                node.value if isinstance(node, ast.Subscript) else node.func.value), key)))
    return found


def test_only_the_manifest_type_indexes_manifests():
    """A manifest is read through runtime.manifest.Manifest (typed properties), never by its
    keys elsewhere: the schema has one owner."""
    keys = schema_top_level_keys()
    assert {"input", "outputs", "classes", "precision", "task", "artifact", "outlier"} <= keys
    offenders = []
    for package in PACKAGES + ("benchmarks",):
        for folder, _, files in os.walk(os.path.join(REPO, package)):
            for name in sorted(files):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, REPO)
                if not name.endswith(".py") or rel == MANIFEST_OWNER or rel in NOT_MANIFEST_READERS:
                    continue
                offenders.extend("{}:{} {}".format(rel, line, code)
                                 for line, code in manifest_key_reads(path, keys))
    assert offenders == [], "\n".join(offenders)
