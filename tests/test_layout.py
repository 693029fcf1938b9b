"""The package keeps its shape: a thin core, one folder per lab, imports one way, small modules.

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
TOPICS = ("memory_wall", "ram_vs_disk", "ttft", "quantization", "sharding", "rag", "disaggregation",
          "memory_processing", "kv_cache")
MAX_MODULE_LINES = 320  # picotron's ~300-line budget, with a little slack


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
    """'core', a topic name, or 'top' (memlab/__init__.py and memlab/cli.py)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in TOPICS + ("core",)) else "top"


def test_every_topic_and_the_core_exist_with_plots_and_cli():
    assert (PKG / "core" / "__init__.py").is_file()
    for topic in TOPICS:
        for name in ("__init__.py", "plots.py", "cli.py"):
            assert (PKG / topic / name).is_file(), f"memlab/{topic}/{name} is missing"
    cli = (PKG / "cli.py").read_text()
    for topic in TOPICS:
        assert f"{topic}_cli" in cli, f"memlab/cli.py does not register memlab/{topic}/cli.py"


def test_no_flat_modules_left_beside_the_folders():
    flat = {p.name for p in PKG.glob("*.py")}
    assert flat == {"__init__.py", "cli.py"}, f"modules outside core/ and the topics: {sorted(flat)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module):
    """A topic imports only the core (and itself); the core imports no topic; no relative imports."""
    me = part_of(module)
    for target, line, _ in imports(MODULES[module]):
        where = f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}"
        assert target != "<relative>", f"{where}: use absolute memlab.* imports"
        if me == "top" or target == "memlab":
            assert me == "top" or target != "memlab", f"{where}: import the core module itself, not `memlab`"
            continue
        other = part_of(target)
        if me == "core":
            assert other == "core", f"{where}: the core imports no topic"
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
    assert folders - {"benchmarks", "tools", "ui", "gpu"} == {"core", *TOPICS}, \
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
        assert ref in TOPICS or (PKG / "core" / f"{ref}.py").is_file(), f"{lab.name}: ml.{ref} is neither a topic nor a core module"


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
