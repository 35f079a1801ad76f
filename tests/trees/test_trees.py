"""exercise/ and solution/ are mirrored trees: identical except in the six learner files, which
exist in both with the same public names and signatures."""
from __future__ import annotations

import ast
from pathlib import Path

from kit import ROOT
from kit.course import load_course

EXERCISE, SOLUTION = ROOT / "exercise", ROOT / "solution"


def _files(tree: Path) -> set[str]:
    return {str(p.relative_to(tree)) for p in tree.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")}


def test_trees_hold_the_same_files():
    assert _files(EXERCISE) == _files(SOLUTION)


def test_trees_differ_only_in_the_learner_files():
    learner = set(load_course().learner_files)
    differing = {f for f in _files(EXERCISE) if (EXERCISE / f).read_bytes() != (SOLUTION / f).read_bytes()}
    assert differing <= learner, f"provided files differ between the trees: {sorted(differing - learner)}"
    assert differing == learner, f"learner files identical in both trees (stub missing?): {sorted(learner - differing)}"


def _public_api(path: Path) -> dict[str, str]:
    """Public top-level names, and each public function's / method's argument list."""
    tree = ast.parse(path.read_text())
    api: dict[str, str] = {}

    def sig(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
        args = fn.args
        names = [a.arg for a in args.posonlyargs + args.args] + (["*" + args.vararg.arg] if args.vararg else []) \
            + [a.arg for a in args.kwonlyargs] + (["**" + args.kwarg.arg] if args.kwarg else [])
        return f"{'async ' if isinstance(fn, ast.AsyncFunctionDef) else ''}({', '.join(names)})"

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            api[node.name] = sig(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            api[node.name] = "class"
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                        not item.name.startswith("_") or item.name in ("__init__", "__aenter__", "__aexit__")):
                    api[f"{node.name}.{item.name}"] = sig(item)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and not target.id.startswith("_"):
                    api[target.id] = "name"
    return api


def test_learner_files_offer_the_same_public_api_in_both_trees():
    for learner_file in load_course().learner_files:
        stub, answer = _public_api(EXERCISE / learner_file), _public_api(SOLUTION / learner_file)
        # Every public module-level name of the answer is in the stub; where both define a
        # function or method, the arguments agree. (The answer may add private-ish helper methods.)
        missing = sorted(k for k, v in answer.items() if "." not in k and v != "name" and k not in stub)
        differing = {k: (stub[k], v) for k, v in answer.items() if k in stub and stub[k] != v}
        assert not missing, f"{learner_file}: the stub lacks {missing}"
        assert not differing, f"{learner_file}: stub and answer differ (stub, answer): {differing}"
