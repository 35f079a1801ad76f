"""The kit's bytecode for the warm parent's private copy (kit/grading/bytecode.py): written whole,
used by Python, and held to what the grading process compiled."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

from kit import ROOT
from kit.grading.bytecode import Bytecode
from kit.grading.integrity import KitFiles


def _copy(tmp_path):
    files = KitFiles.take(ROOT)
    root = tmp_path / "kit"
    files.copy_to(root)
    code = Bytecode(files)
    code.start(root)
    code.wait()
    return files, code, root


def test_every_module_gets_a_checked_hash_pyc(tmp_path):
    files, code, root = _copy(tmp_path)
    assert len(code.pycs) == len([n for n in files.files if n.endswith(".py")])
    pyc = root / importlib.util.cache_from_source("kit/results.py")
    assert pyc.read_bytes()[4:8] == (3).to_bytes(4, "little")  # flags: hash-based, checked
    assert code.changes(root) == []


def test_python_runs_the_pyc_beside_a_source_of_the_same_hash(tmp_path):
    """Why the grading process holds the pycs to what it compiled: Python trusts a checked-hash
    pyc whose hash matches the source, whatever code it holds."""
    from importlib._bootstrap_external import _code_to_hash_pyc

    _, code, root = _copy(tmp_path)
    source = (root / "kit" / "topology.py").read_bytes()
    other = compile(source + b"\nFROM_THE_PYC = 1\n", str(root / "kit" / "topology.py"), "exec", dont_inherit=True)
    pyc = root / importlib.util.cache_from_source("kit/topology.py")
    pyc.write_bytes(bytes(_code_to_hash_pyc(other, importlib.util.source_hash(source), checked=True)))
    probe = "import kit.topology as t; print(getattr(t, 'FROM_THE_PYC', 0))"
    run = [sys.executable, "-B", "-c", probe]
    assert subprocess.run(run, cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root)}, check=False).stdout.strip() == "1"
    assert code.changes(root) == [f"changed {pyc.relative_to(root).as_posix()}"]
    code.restore(root)
    assert subprocess.run(run, cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root)}, check=False).stdout.strip() == "0"


def test_a_stale_pyc_is_not_used_when_the_source_changed(tmp_path):
    _, _, root = _copy(tmp_path)
    source = root / "kit" / "topology.py"
    source.write_text(source.read_text(encoding="utf-8") + "\nCHANGED_HERE = 1\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-B", "-c", "import kit.topology as t; print(t.CHANGED_HERE)"],
                          cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root)}, check=False)
    assert done.stdout.strip() == "1", done.stderr


def test_a_forged_or_added_pyc_is_named_and_put_back(tmp_path):
    _, code, root = _copy(tmp_path)
    forged = root / importlib.util.cache_from_source("kit/results.py")
    original = forged.read_bytes()
    forged.write_bytes(original[:16] + b"\x00" * 32)
    added = root / "kit" / "__pycache__" / "evil.cpython-311.pyc"
    added.write_bytes(b"not bytecode")
    assert sorted(code.changes(root)) == sorted([f"added {added.relative_to(root).as_posix()}",
                                                 f"changed {forged.relative_to(root).as_posix()}"])
    code.restore(root)
    assert forged.read_bytes() == original and not added.exists()
    assert code.changes(root) == []
