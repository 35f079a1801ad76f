"""docs/architecture.md names only modules and files that exist."""
from __future__ import annotations

import importlib.util
import re

from kit import ROOT

DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def test_every_dotted_kit_module_it_names_exists():
    named = set(re.findall(r"\bkit(?:\.[a-z_]+)+", DOC))
    missing = []
    for dotted in sorted(named):
        parts = dotted.split(".")
        # "kit.grading.runner.run_checks": the longest prefix that is a module must exist, and
        # the rest must be an attribute of it.
        for cut in range(len(parts), 0, -1):
            module = ".".join(parts[:cut])
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, AttributeError):  # a prefix that is a module, not a package
                found = False
            if found:
                obj = importlib.import_module(module)
                for attr in parts[cut:]:
                    if not hasattr(obj, attr):
                        missing.append(dotted)
                        break
                    obj = getattr(obj, attr)
                break
        else:
            missing.append(dotted)
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"


def test_every_file_in_its_layout_exists():
    block = DOC.split("## Layout", 1)[1].split("```", 2)[1]
    folder_stack: list[tuple[int, str]] = []
    missing = []
    for line in block.splitlines():
        match = re.match(r"^(\s*)([\w./-]+?(?:\.py|/))(?:\s|$)", line)
        if not match:
            continue
        indent, name = len(match[1]), match[2]
        while folder_stack and folder_stack[-1][0] >= indent:
            folder_stack.pop()
        path = "".join(f for _, f in folder_stack) + name
        if not (ROOT / path).exists():
            missing.append(path)
        if name.endswith("/"):
            folder_stack.append((indent, name))
    assert not missing, f"the layout in docs/architecture.md lists files that do not exist: {missing}"
