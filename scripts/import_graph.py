"""Import graph of the pack: every edge between its modules, the floors they cross, circles, local imports.

Run from the repository root (stdlib only, reads the source with ``ast``, imports nothing)::

    python scripts/import_graph.py            # summary + every violation
    python scripts/import_graph.py --edges    # ... and every edge (``local`` marks function-local ones)

The floors are the developers' guide's layering (models < sampling < checkpoints < pipelines <
cli/nodes) with the base modules below them; ``tests/test_import_structure.py`` fails on any import
that runs up a floor, any circle, and any function-local import not in its allowlist.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("streaming_core", "nodes")  # plus the pack root's __init__.py, named "(pack)"
ROOT = "(pack)"

# Floors, lowest first. A module may import its own floor and any floor below it, never one above.
# Longest matching prefix wins (so a new top-level ``streaming_core.x`` module is a base module); a
# module matching no prefix is reported as unplaced.
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("streaming_core", "streaming_core.errors", "streaming_core.seeds", "streaming_core.progress",
              "streaming_core.video_io", "streaming_core.state_files", "streaming_core.official",
              "streaming_core.benchmark")),
    ("schedules", ("streaming_core.schedules",)),
    ("models", ("streaming_core.models",)),
    ("sampling", ("streaming_core.sampling",)),
    ("checkpoints", ("streaming_core.checkpoints",)),
    # tiny models, parity runners and metrics drive whole runs and loaders, like the pipelines
    ("pipelines", ("streaming_core.pipelines", "streaming_core.parity", "streaming_core.tiny", "streaming_core.metrics")),
    ("cli/nodes", ("streaming_core.cli", "streaming_core.__main__", "nodes", ROOT)),
]
FLOOR_INDEX = {name: i for i, (name, _) in enumerate(FLOORS)}

# Heavy optional libraries: the only ones a function may import inside its body, each for its reason.
# A function-local import of a pack module is allowed only where it defers one of these (the module it
# imports loads one at import time and the importing module does not).
HEAVY_OPTIONAL: dict[str, str] = {
    "diffusers": "seconds to import; only the VAE, the UNet3D-folder enhancers and Stream-DiffVSR need it",
    "transformers": "seconds to import; only the CLIP text encoders need it",
    "open_clip": "pulls in timm/huggingface_hub; only the tokenizers and the open_clip towers need it",
    "kornia": "only the official image-encoder preprocessing parity path needs it",
    "torchsde": "only the DPM++ SDE Brownian-tree noise needs it",
    "scenedetect": "PySceneDetect is optional: evaluate skips SCuts with the package to install when it is missing",
    "av": "PyAV (FFmpeg bindings) is only needed to read or write a video file",
    "PIL": "only image files (start frames, previews) need it",
    "safetensors": "importing the pack must not load it (tests/test_nodes_pack_import.py); read/write time only",
    "torchvision": "only RAFT (Stream-DiffVSR's optical flow) needs it",
    "scipy": "importing the pack must not load it (tests/test_nodes_pack_import.py)",
    "huggingface_hub": "importing the pack must not load it (tests/test_nodes_pack_import.py)",
    "comfy": "ComfyUI itself: only nodes/host imports it, and only inside ComfyUI",
    "folder_paths": "ComfyUI itself: only nodes/host imports it, and only inside ComfyUI",
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    local: bool  # inside a function body (imported when called, not when the module loads)
    dynamic: bool = False  # importlib.import_module of a module named in a string


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or ROOT


def pack_files() -> list[Path]:
    files = [REPO / "__init__.py"] if (REPO / "__init__.py").is_file() else []
    for package in PACKAGES:
        files += sorted((REPO / package).rglob("*.py"))
    return files


def floor_of(module: str) -> str | None:
    best, best_len = None, -1
    for name, prefixes in FLOORS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = name, len(prefix)
    return best


def _package_of(module: str, is_init: bool) -> list[str]:
    parts = [] if module == ROOT else module.split(".")
    return parts if is_init else parts[:-1]


def _resolve(base: list[str], name: str | None, level: int) -> str:
    if level:
        base = base[: len(base) - (level - 1)] if level > 1 else base
        parts = base + (name.split(".") if name else [])
    else:
        parts = name.split(".") if name else []
    return ".".join(parts) or ROOT


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_init: bool, known: set[str]):
        self.module, self.package, self.known = module, _package_of(module, is_init), known
        self.depth = 0
        self.edges: list[Edge] = []
        self.uses_importlib = False
        self.top_external: set[str] = set()  # top-level names of third-party/stdlib modules imported at load time

    def _known_target(self, dotted: str) -> str | None:
        while dotted:
            if dotted in self.known:
                return dotted
            dotted = dotted.rpartition(".")[0]
        return None

    def _add(self, target: str | None, node: ast.AST, dynamic: bool = False) -> None:
        if target and target != self.module:
            self.edges.append(Edge(self.module, target, node.lineno, self.depth > 0, dynamic))

    def visit_FunctionDef(self, node):  # noqa: N802 - ast visitor names
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_Import(self, node):  # noqa: N802
        for alias in node.names:
            self.uses_importlib |= alias.name == "importlib" or alias.name.startswith("importlib.")
            target = self._known_target(alias.name)
            self._add(target, node)
            if target is None and self.depth == 0:
                self.top_external.add(alias.name.split(".")[0])

    def visit_ImportFrom(self, node):  # noqa: N802
        if node.module == "importlib" or (node.module or "").startswith("importlib."):
            self.uses_importlib = True
        base = _resolve(self.package, node.module, node.level)
        if not node.level and not self._known_target(base):
            if self.depth == 0 and node.module != "__future__":
                self.top_external.add(base.split(".")[0])
            return  # a third-party or standard-library module
        for alias in node.names:  # ``from . import host`` names a submodule, ``from .x import f`` a name
            sub = f"{base}.{alias.name}" if base != ROOT else alias.name
            self._add(sub if sub in self.known else self._known_target(base), node)

    def visit_Constant(self, node):  # noqa: N802 - module names handed to importlib.import_module
        if isinstance(node.value, str) and node.value in self.known and "." in node.value:
            self._strings.append(node)

    def collect(self, tree: ast.AST) -> list[Edge]:
        self._strings: list[ast.Constant] = []
        self.visit(tree)
        if self.uses_importlib:
            for node in self._strings:
                self._add(node.value, node, dynamic=True)
        return self.edges


def local_external_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Function-local imports of modules outside the pack (third-party or standard library)."""
    found = []
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, ast.Import):
                    found += [(node.lineno, a.name) for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    found.append((node.lineno, node.module))
    return sorted(set(found))


@dataclass
class Graph:
    modules: list[str]
    edges: list[Edge]
    external_local: dict[str, list[tuple[int, str]]]  # module -> function-local third-party imports
    top_external: dict[str, set[str]]  # module -> third-party/stdlib packages it imports at load time
    local_statements: int = 0  # import statements inside function bodies

    def loaded_at_import(self, module: str) -> set[str]:
        """The pack modules importing ``module`` runs: top-level imports, transitively, and parent packages."""
        if not hasattr(self, "_top_succ"):
            self._top_succ: dict[str, set[str]] = {m: set() for m in self.modules}
            for e in self.edges:
                if not e.local and not e.dynamic and e.target in self._top_succ:
                    self._top_succ[e.source].add(e.target)
        seen, todo = set(), [module]
        while todo:
            m = todo.pop()
            if m in seen or m not in self._top_succ:
                continue
            seen.add(m)
            todo += self._top_succ[m]
            todo += [".".join(m.split(".")[:i]) for i in range(1, m.count(".") + 1)]
        return seen

    def heavy_at_import(self, module: str) -> set[str]:
        """The heavy optional libraries importing ``module`` loads."""
        found: set[str] = set()
        for m in self.loaded_at_import(module):
            found |= self.top_external.get(m, set()) & HEAVY_OPTIONAL.keys()
        return found

    def local_import_verdicts(self) -> list[tuple[Edge, str]]:
        """Each function-local pack import with '' where it is unjustified, else the library it defers."""
        out = []
        for e in self.edges:
            if e.local and not e.dynamic:
                deferred = self.heavy_at_import(e.target) - self.heavy_at_import(e.source)
                out.append((e, ", ".join(sorted(deferred))))
        return out

    def unjustified_local(self) -> list[str]:
        """Function-local imports that defer no heavy optional library."""
        bad = [f"{e.source}:{e.line} -> {e.target}" for e, why in self.local_import_verdicts() if not why]
        for module, items in sorted(self.external_local.items()):
            bad += [f"{module}:{line} -> {mod}" for line, mod in items if mod.split(".")[0] not in HEAVY_OPTIONAL]
        return bad

    def violations(self) -> list[tuple[Edge, str, str]]:
        out = []
        for e in self.edges:
            a, b = floor_of(e.source), floor_of(e.target)
            if a and b and FLOOR_INDEX[b] > FLOOR_INDEX[a]:
                out.append((e, a, b))
        return out

    def unplaced(self) -> list[str]:
        return [m for m in self.modules if floor_of(m) is None]

    def circles(self) -> list[list[str]]:
        """Strongly connected components (more than one module) of the graph, all edges counted."""
        succ: dict[str, set[str]] = {m: set() for m in self.modules}
        for e in self.edges:
            if e.target in succ and not _is_parent_package(e.target, e.source):
                succ[e.source].add(e.target)
        index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

        def strong(v):  # Tarjan, iterative enough for this graph's depth
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in sorted(succ[v]):
                if w not in index:
                    strong(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

        sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
        for m in self.modules:
            if m not in index:
                strong(m)
        return sorted(out)


def _is_parent_package(target: str, source: str) -> bool:
    """``from . import x`` inside a package's own submodule runs the package __init__ first; Python
    handles a package importing its submodules and them importing it back, so it is no circle."""
    return target == ROOT or source.startswith(target + ".")


def build_graph() -> Graph:
    files = pack_files()
    names = {f: module_name(f) for f in files}
    known = set(names.values())
    edges, external_local, top_external, local_statements = [], {}, {}, set()
    for f, name in names.items():
        tree = ast.parse(f.read_text(), str(f))
        collector = _Collector(name, f.name == "__init__.py", known)
        edges += collector.collect(tree)
        top_external[name] = collector.top_external
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local_statements |= {(name, n.lineno) for n in ast.walk(func) if isinstance(n, (ast.Import, ast.ImportFrom))}
        ext = local_external_imports(tree)
        if ext:
            external_local[name] = [(line, mod) for line, mod in ext if not _in_pack(mod, known)]
    edges = sorted(set(edges), key=lambda e: (e.source, e.line, e.target))
    return Graph(sorted(known), edges, {k: v for k, v in external_local.items() if v}, top_external,
                 len(local_statements))


def _in_pack(mod: str | None, known: set[str]) -> bool:
    return bool(mod) and any(mod == k or mod.startswith(k + ".") for k in known if k != ROOT)


def summary(graph: Graph) -> list[str]:
    local = [e for e in graph.edges if e.local]
    ext_local = sum(len(v) for v in graph.external_local.values())
    lines = [
        f"modules: {len(graph.modules)}",
        f"edges: {len(graph.edges)} ({len(graph.edges) - len(local)} top-level, {len(local)} function-local, "
        f"{sum(e.dynamic for e in graph.edges)} via importlib)",
        f"function-local import statements: {graph.local_statements}",
        f"function-local imports of third-party/stdlib modules: {ext_local}",
        f"function-local imports deferring no heavy optional library: {len(graph.unjustified_local())}",
        f"upward imports: {len(graph.violations())}",
        f"circles: {len(graph.circles())}",
        f"unplaced modules: {len(graph.unplaced())}",
        "floors: " + " < ".join(name for name, _ in FLOORS),
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", action="store_true", help="list every edge")
    parser.add_argument("--local", action="store_true", help="list every function-local import")
    args = parser.parse_args(argv)
    graph = build_graph()
    print("\n".join(summary(graph)))
    for e, a, b in graph.violations():
        print(f"UPWARD {e.source} ({a}) -> {e.target} ({b})  line {e.line}{' local' if e.local else ''}")
    for comp in graph.circles():
        print("CIRCLE " + " <-> ".join(comp))
    for m in graph.unplaced():
        print(f"UNPLACED {m}")
    for item in graph.unjustified_local():
        print(f"UNJUSTIFIED-LOCAL {item}")
    if args.local:
        for e, why in graph.local_import_verdicts():
            print(f"LOCAL {e.source}:{e.line} -> {e.target}  " + (f"(defers {why})" if why else "(defers nothing)"))
        for m, items in sorted(graph.external_local.items()):
            for line, mod in items:
                print(f"LOCAL-EXT {m}:{line} -> {mod}")
    if args.edges:
        for e in graph.edges:
            kind = "local" if e.local else "top"
            print(f"EDGE {e.source} -> {e.target} [{kind}{', importlib' if e.dynamic else ''}] line {e.line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
