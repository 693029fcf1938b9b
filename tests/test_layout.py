"""The package keeps its shape: a thin core of what labs share, the course harness, one folder per lab,
imports one way, small modules.

Read from the source with `ast` (nothing is imported), so a broken rule names the file and line.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "memlab"
TOPICS = ("start_here", "memory_wall", "ram_vs_disk", "ttft", "quantization", "sharding", "rag", "disaggregation",
          "memory_processing", "kv_cache")
MAX_MODULE_LINES = 300  # picotron's ~300-line budget


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports(path: Path) -> list[tuple[str, int, tuple[str, ...]]]:
    """Every memlab module `path` imports (at any depth: function-level imports count too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, ()) for a in node.names if a.name.split(".")[0] == "memlab"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "memlab":
            names = tuple(a.name for a in node.names)
            for name in names:  # `from memlab.rag import chunks` imports the module memlab.rag.chunks
                sub = f"{node.module}.{name}"
                out.append((sub if sub in MODULES else node.module, node.lineno, (name,)))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            out.append(("<relative>", node.lineno, ()))
    return out


def part_of(module: str) -> str:
    """'core', 'course', a topic name, or 'top' (memlab/__init__.py and memlab/cli.py)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in TOPICS + ("core", "course")) else "top"


def test_every_topic_and_the_core_exist_with_plots_and_cli():
    assert (PKG / "core" / "__init__.py").is_file() and (PKG / "course" / "__init__.py").is_file()
    for topic in TOPICS:
        for name in ("__init__.py", "plots.py", "cli.py"):
            assert (PKG / topic / name).is_file(), f"memlab/{topic}/{name} is missing"
    cli = (PKG / "cli.py").read_text()
    for topic in TOPICS:
        assert f"{topic}_cli" in cli, f"memlab/cli.py does not register memlab/{topic}/cli.py"


def test_no_flat_modules_left_beside_the_folders():
    flat = {p.name for p in PKG.glob("*.py")}
    assert flat == {"__init__.py", "cli.py"}, f"modules outside core/, course/ and the topics: {sorted(flat)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module):
    """A topic imports only the core (and itself); the core imports no topic; the course harness imports the
    core and itself, and only the top (and the notebooks) import it; no relative imports."""
    me = part_of(module)
    for target, line, _ in imports(MODULES[module]):
        where = f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}"
        assert target != "<relative>", f"{where}: use absolute memlab.* imports"
        if me == "top" or target == "memlab":
            assert me == "top" or target != "memlab", f"{where}: import the core module itself, not `memlab`"
            continue
        other = part_of(target)
        if me == "core":
            assert other == "core", f"{where}: the core imports no topic and not the course harness"
        elif me == "course":
            assert other in ("core", "course"), f"{where}: the course harness imports the core and itself"
        else:
            assert other in ("core", me), f"{where}: a topic imports only the core and itself"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_nothing_private_crosses_a_module(module):
    path = MODULES[module]
    for target, line, names in imports(path):
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        assert not private, f"{path.relative_to(ROOT)}:{line} imports private {private} from {target}"
    # and no `other_module._name` on a memlab module imported by name
    tree = ast.parse(path.read_text())
    aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
               and n.module.startswith("memlab") for a in n.names if f"{n.module}.{a.name}" in MODULES}
    for n in ast.walk(tree):
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases \
                and n.attr.startswith("_") and not n.attr.startswith("__"):
            pytest.fail(f"{path.relative_to(ROOT)}:{n.lineno} uses private {n.value.id}.{n.attr}")


def test_no_import_cycles():
    graph = {m: {t for t, _, _ in imports(p) if t in MODULES and t != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle = path[path.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_size_budget(module):
    n = len(MODULES[module].read_text().splitlines())
    assert n <= MAX_MODULE_LINES, f"{MODULES[module].relative_to(ROOT)} has {n} lines (budget {MAX_MODULE_LINES}): split it"


def test_tests_mirror_the_package():
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and p.name not in ("__pycache__",)}
    # beside the mirror: benchmarks, tools (reference runs, peak memory), ui (a real browser), gpu (the device script)
    assert folders - {"benchmarks", "tools", "ui", "gpu"} == {"core", "course", *TOPICS}, \
        f"tests/ folders vs the package's parts: {sorted(folders)}"


def lab_code(path: Path) -> str:
    nb = json.loads(path.read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("lab", sorted((ROOT / "labs").glob("*.ipynb")), ids=lambda p: p.stem)
def test_labs_use_public_names_and_define_no_functions(lab):
    code = lab_code(lab)
    private = sorted(set(re.findall(r"\b(?:ml|memlab)(?:\.[A-Za-z]\w*)*\._(?!_)\w+", code)))
    assert not private, f"{lab.name} uses private names {private}"
    assert not re.search(r"^def |^class ", code, re.M), f"{lab.name} defines a function or class: put it in memlab"
    for ref in set(re.findall(r"\bml\.([a-z_]+)\.", code)):
        assert ref in TOPICS or any((PKG / part / f"{ref}.py").is_file() for part in ("core", "course")), \
            f"{lab.name}: ml.{ref} is neither a topic nor a core or course module"


@pytest.mark.parametrize("lab", sorted((ROOT / "labs").glob("*.ipynb")), ids=lambda p: p.stem)
def test_labs_check_their_claims_in_code(lab):
    """Outputs are not committed, so NBVAL_CHECK_OUTPUT would compare nothing: claims are ml.checks."""
    code = "\n".join("".join(c["source"]) for c in json.loads(lab.read_text())["cells"] if c["cell_type"] == "code")
    assert "NBVAL_CHECK_OUTPUT" not in code, f"{lab.name}: a cell compares its output with nothing; use ml.checks"
    assert code.count("ml.checks.") >= 2, f"{lab.name}: fewer than two claims checked in code"


def test_every_lab_has_the_same_setup_cell_right_after_its_parameters():
    """One install cell, identical everywhere, after the parameter cell (which names the lab's EXTRAS)."""
    setups = {}
    for lab in sorted((ROOT / "labs").glob("*.ipynb")):
        cells = json.loads(lab.read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        assert "QUICK = os.environ" in code[0] and "EXTRAS = " in code[0], f"{lab.name}: parameters first"
        assert "google.colab" in code[1], f"{lab.name}: the setup cell right after the parameters"
        assert sum("google.colab" in c for c in code) == 1, f"{lab.name}: one setup cell"
        assert "colab-badge" in "".join(cells[0]["source"]) and lab.name in "".join(cells[0]["source"])
        setups[lab.name] = code[1]
    assert len(set(setups.values())) == 1, "the setup cells differ between labs"


GPU_LABS = ("00", "01", "02", "03", "04", "05", "07")  # the labs whose models or workers run on a GPU


@pytest.mark.parametrize("number", GPU_LABS)
def test_gpu_labs_take_one_device_parameter(number):
    """DEVICE is a parameter (MEMLAB_DEVICE, "auto" by default), and the lab uses it beyond that line."""
    lab = next((ROOT / "labs").glob(f"{number}_*.ipynb"))
    code = ["".join(c["source"]) for c in json.loads(lab.read_text())["cells"] if c["cell_type"] == "code"]
    line = 'DEVICE = os.environ.get("MEMLAB_DEVICE", "auto")'
    assert line in code[0], f"{lab.name}: DEVICE belongs in the parameter cell"
    assert sum(c.count("DEVICE") for c in code[1:]) >= 1, f"{lab.name}: DEVICE is set but never used"


def test_one_name_one_meaning():
    """No class name is defined in two modules: `Workload` in the roofline and in the simulator once read
    as one thing and meant two."""
    where: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(name)
    twice = {cls: mods for cls, mods in where.items() if len(mods) > 1}
    assert not twice, f"class names defined in more than one module: {twice}"


# ---- core means shared -------------------------------------------------------------------------
# A lab's code is its topic folder (TOPICS[i] is lab i's) and its notebook's code cells. The core holds
# what two or more labs use; the course harness (memlab/course/) what the notebooks use and no topic does.

def lab_notebook(number: int) -> Path:
    return next((ROOT / "labs").glob(f"{number:02d}_*.ipynb"))


def reach(starts: set[str]) -> set[str]:
    """Every memlab module `starts` import, directly or through others (themselves included)."""
    seen, todo = set(), list(starts)
    while todo:
        m = todo.pop()
        if m in seen or m not in MODULES:
            continue
        seen.add(m)
        todo += [t for t, _, _ in imports(MODULES[m])]
    return seen


def notebook_modules(code: str) -> set[str]:
    """The core and course modules a notebook reads as `ml.<name>` (and `ml.load`/`ml.generate`)."""
    names = set(re.findall(r"\bml\.([a-z_]+)\b", code)) | ({"loading"} if "ml.load(" in code else set()) \
        | ({"generation"} if "ml.generate(" in code else set())
    return {f"memlab.{part}.{n}" for n in names for part in ("core", "course") if f"memlab.{part}.{n}" in MODULES}


def labs_using_each_core_module() -> dict[str, set[int]]:
    users: dict[str, set[int]] = {m: set() for m in MODULES if part_of(m) == "core" and m != "memlab.core"}
    for number, topic in enumerate(TOPICS):
        starts = {m for m in MODULES if part_of(m) == topic} | notebook_modules(lab_code(lab_notebook(number)))
        for m in reach(starts):
            if m in users:
                users[m].add(number)
    return users


def test_core_modules_are_shared_by_two_labs_or_more():
    """A core module is used, through imports, by two or more labs' code, or by `import memlab` itself."""
    top = {t for path in (PKG / "__init__.py", PKG / "cli.py") for t, _, _ in imports(path)}
    lonely = {m: sorted(labs) for m, labs in labs_using_each_core_module().items() if len(labs) < 2 and m not in top}
    assert not lonely, f"core modules used by fewer than two labs (module: labs): {lonely}; move each to its lab's folder"


def single_lab_sections() -> list[str]:
    """Public functions and classes of the core that exactly one lab's code names and nothing else in the
    package uses (not even their own module): a section that serves one lab."""
    texts = {m: p.read_text() for m, p in MODULES.items()}
    trees = {m: ast.parse(t) for m, t in texts.items()}
    imported = {m: {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
                for m, tree in trees.items()}
    aliases: dict[tuple[str, str], set[str]] = {}  # (importer, module) -> the names the importer calls it by
    for m, tree in trees.items():
        for n in ast.walk(tree):
            pairs = [(f"{n.module}.{a.name}", a.asname) for a in n.names] if isinstance(n, ast.ImportFrom) and n.module \
                else [(a.name, a.asname) for a in n.names] if isinstance(n, ast.Import) else []
            for target, alias in pairs:
                if alias:
                    aliases.setdefault((m, target), set()).add(alias)

    def uses(text: str, names: set, module: str, name: str, importer: str = "") -> bool:
        """`module.name` (or `alias.name`), or `name` imported from `module`."""
        calls = {module.rsplit(".", 1)[1]} | aliases.get((importer, module), set())
        return (module, name) in names or any(re.search(rf"\b{c}\.{name}\b", text) for c in calls)

    labs = {number: [m for m in MODULES if part_of(m) == topic] for number, topic in enumerate(TOPICS)}
    notebooks = {number: lab_code(lab_notebook(number)) for number in labs}
    others = [m for m in MODULES if part_of(m) in ("core", "course", "top")]
    found = []
    for module, tree in trees.items():
        if part_of(module) != "core":
            continue
        for node in tree.body:
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or node.name.startswith("_"):
                continue
            name = node.name
            if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(tree)) \
                    or any(uses(texts[m], imported[m], module, name, m) for m in others if m != module):
                continue
            users = [n for n, mods in labs.items() if uses(notebooks[n], set(), module, name)
                     or any(uses(texts[m], imported[m], module, name, m) for m in mods)]
            if len(users) == 1 and f"{module}.{name}" not in KEPT_IN_CORE:
                found.append(f"{module}.{name} (lab {users[0]:02d} only)")
    return found


# one lab uses these, and the core keeps them for a reason the rule cannot see
KEPT_IN_CORE = {
    "memlab.core.ckernels.pack_q4": "the C kernels' int4 layout, beside the kernels that read it (gemv.c, step.c); "
                                    "lab 04's quantizer writes it",
    "memlab.core.measure.busy": "the yes/no form of measure.busy_reason, the core's one rule for a quiet machine "
                                "(ceilings and kernels ask the reason); lab 09 asks yes or no",
}


def test_no_core_section_serves_one_lab():
    """A function or class in the core that one lab alone uses belongs in that lab's folder (the fits
    table once sat in core/footprint.py, the memory wall's history in core/roofline.py)."""
    found = single_lab_sections()
    assert not found, f"core sections that one lab alone uses: {found}; move each to that lab's folder"


def test_the_course_harness_serves_the_notebooks_only():
    for module in MODULES:
        if part_of(module) == "course":
            users = [m for m, p in MODULES.items() if part_of(m) not in ("course", "top")
                     and any(t == module for t, _, _ in imports(p))]
            assert not users, f"{module} is the notebooks' harness, but {users} import it"


def test_imports_sit_at_the_top_except_in_the_cli():
    """A module's memlab dependencies are read in its first lines. Only the CLI modules import inside
    functions: registering a command must not import what it runs (`memlab --help` loads no torch,
    tests/test_cli_imports.py)."""
    for module, path in MODULES.items():
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = [t for t, _, _ in imports_in(node)]
                assert not inner, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}() imports {inner}: import at the top"


def imports_in(tree: ast.AST) -> list[tuple[str, int, tuple[str, ...]]]:
    """The memlab imports anywhere inside `tree` (a function)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, ()) for a in node.names if a.name.split(".")[0] == "memlab"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "memlab":
            out.append((node.module, node.lineno, tuple(a.name for a in node.names)))
    return out
