"""What to grade (kit/grading/submission.py): a folder or a zip resolved to the tree that holds
`services/`, unpacked safely (no path outside the scratch folder, no links, a size limit), and an
upload of loose learner files assembled over a copy of the exercise."""
from __future__ import annotations

import os
import stat
import tempfile
import zipfile
from pathlib import Path

import pytest

from kit.course import load_course
from kit.grading import submission
from kit.grading.submission import TargetError, assemble_submission, copy_tree, prepare, resolve_target

LEARNER_FILES = load_course().learner_files


def _tree(root: Path) -> Path:
    """A minimal tree: services/shared/ and one learner file."""
    (root / "services" / "shared").mkdir(parents=True)
    (root / "services" / "shared" / "telemetry.py").write_text("# step 1\n")
    return root


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """Where resolve_target makes its temporary folders during this test."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message, message
    return message


# -- resolve_target ------------------------------------------------------------------------------

def test_a_folder_is_graded_where_it_is(tmp_path):
    tree = _tree(tmp_path / "alice")
    with resolve_target(tree) as target:
        assert target.path == tree.resolve()
        assert target.label == str(tree)
    assert (tree / "services" / "shared" / "telemetry.py").exists()  # never removed


def test_a_folder_holding_the_tree_one_level_down_is_found(tmp_path):
    _tree(tmp_path / "alice" / "exercise")
    with resolve_target(tmp_path / "alice") as target:
        assert target.path == (tmp_path / "alice" / "exercise").resolve()


def test_a_zip_is_unpacked_into_a_scratch_folder_removed_afterwards(tmp_path, scratch):
    archive = _zip(tmp_path / "bob.zip", {"exercise/services/shared/telemetry.py": "# zipped\n",
                                          "exercise/README.md": "hello\n"})
    with resolve_target(archive) as target:
        assert target.label == str(archive)
        assert (target.path / "services" / "shared" / "telemetry.py").read_text() == "# zipped\n"
        assert target.path.name == "exercise" and scratch in target.path.parents
    assert not list(scratch.iterdir())


@pytest.mark.parametrize("member", ["../evil.py", "exercise/../../evil.py", "/tmp/evil.py"])
def test_a_zip_with_a_path_outside_its_folder_is_refused(tmp_path, scratch, member):
    archive = _zip(tmp_path / "mallory.zip", {"exercise/services/shared/telemetry.py": "# ok\n",
                                              member: "print('escaped')\n"})
    with pytest.raises(TargetError) as excinfo:
        resolve_target(archive)
    message = _one_line_error(excinfo)
    assert str(archive) in message and "unsafe path" in message and member in message, message
    assert not list(tmp_path.rglob("evil.py"))
    assert not list(scratch.iterdir())  # the half-unpacked scratch folder is gone


def test_a_symlink_inside_a_zip_is_not_unpacked(tmp_path):
    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("exercise/services/shared/telemetry.py", "# ok\n")
        link = zipfile.ZipInfo("exercise/services/shared/passwd.py")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with resolve_target(archive) as target:
        shared = target.path / "services" / "shared"
        assert (shared / "telemetry.py").exists()
        assert not (shared / "passwd.py").exists() and not (shared / "passwd.py").is_symlink()


def test_a_zip_larger_than_the_limit_is_refused(tmp_path, scratch, monkeypatch):
    monkeypatch.setattr(submission, "MAX_UNPACKED_BYTES", 100)
    archive = _zip(tmp_path / "big.zip", {"exercise/services/shared/telemetry.py": "x" * 60,
                                          "exercise/services/shared/sampling.py": "y" * 60})
    with pytest.raises(TargetError) as excinfo:
        resolve_target(archive)
    message = _one_line_error(excinfo)
    assert "unpacks to more than" in message, message
    assert not list(scratch.iterdir())


def test_a_zip_without_services_names_what_to_zip(tmp_path, scratch):
    archive = _zip(tmp_path / "carol.zip", {"notes/readme.txt": "no code here\n"})
    with pytest.raises(TargetError) as excinfo:
        resolve_target(archive)
    message = _one_line_error(excinfo)
    assert "holds no services/ folder" in message and str(archive) in message, message


@pytest.mark.parametrize("make, expected", [
    (lambda p: p / "nowhere", "no such file or folder"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no services/ folder inside"),
    (lambda p: (p / "notes.txt").write_text("hi") and p / "notes.txt", "not a folder and not a zip file"),
])
def test_what_cannot_be_graded_says_so_in_one_line(tmp_path, make, expected):
    with pytest.raises(TargetError) as excinfo:
        resolve_target(make(tmp_path))
    assert expected in _one_line_error(excinfo)


# -- copy_tree ------------------------------------------------------------------------------------

def test_copy_tree_copies_regular_files_only(tmp_path):
    source = _tree(tmp_path / "alice")
    secret = tmp_path / "secret.txt"
    secret.write_text("instructor only\n")
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "x.py").write_text("# not the learner's\n")
    os.symlink(secret, source / "services" / "shared" / "secret.py")      # a file link
    os.symlink(outside, source / "services" / "linked")                   # a folder link
    (source / "services" / "__pycache__").mkdir()
    (source / "services" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (source / ".git").mkdir()
    (source / ".git" / "HEAD").write_text("ref\n")

    dest = tmp_path / "copy"
    copy_tree(source, dest)
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert copied == ["services/shared/telemetry.py"]
    assert not any(p.is_symlink() for p in dest.rglob("*"))


def test_copy_tree_stops_at_the_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(submission, "MAX_UNPACKED_BYTES", 100)
    source = _tree(tmp_path / "alice")
    (source / "services" / "big.bin").write_bytes(b"x" * 200)
    with pytest.raises(TargetError) as excinfo:
        copy_tree(source, tmp_path / "copy")
    assert "larger than" in _one_line_error(excinfo)


# -- assemble_submission (an upload of learner files) ---------------------------------------------

@pytest.fixture
def exercise(tmp_path) -> Path:
    """A stand-in for exercise/: every learner file, each saying it is the exercise's."""
    root = tmp_path / "exercise"
    for learner_file in LEARNER_FILES:
        (root / learner_file).parent.mkdir(parents=True, exist_ok=True)
        (root / learner_file).write_text(f"# exercise {learner_file}\n")
    (root / "services" / "provided.py").write_text("# provided\n")
    return root


def test_learner_files_are_taken_by_path_then_by_unique_name(tmp_path, exercise):
    upload = tmp_path / "upload"
    telemetry, trace_context, workflows, http_client = LEARNER_FILES[:4]
    # by path, anywhere under the upload (the shortest such path wins)
    (upload / "my-work" / Path(telemetry).parent).mkdir(parents=True)
    (upload / "my-work" / telemetry).write_text("# learner telemetry\n")
    (upload / "old" / "copy" / Path(telemetry).parent).mkdir(parents=True)
    (upload / "old" / "copy" / telemetry).write_text("# an older copy\n")
    # by name, loose in the upload
    (upload / Path(trace_context).name).write_text("# learner trace context\n")
    # by name, but twice: ambiguous, so not taken
    (upload / "a").mkdir()
    (upload / "b").mkdir()
    (upload / "a" / Path(workflows).name).write_text("# one\n")
    (upload / "b" / Path(workflows).name).write_text("# two\n")
    # inside a zip in the upload
    _zip(upload / "client.zip", {f"stuff/{Path(http_client).name}": "# learner http client\n"})
    # what is never taken
    (upload / "__pycache__").mkdir()
    (upload / "__pycache__" / Path(LEARNER_FILES[4]).name).write_text("# cached\n")

    dest = tmp_path / "tree"
    notes = assemble_submission(upload, dest, exercise=exercise)

    assert (dest / telemetry).read_text() == "# learner telemetry\n"
    assert (dest / trace_context).read_text() == "# learner trace context\n"
    assert (dest / workflows).read_text() == f"# exercise {workflows}\n"
    assert (dest / http_client).read_text() == "# learner http client\n"
    assert (dest / LEARNER_FILES[4]).read_text() == f"# exercise {LEARNER_FILES[4]}\n"
    assert (dest / "services" / "provided.py").read_text() == "# provided\n"
    assert len(notes) == len(LEARNER_FILES)
    assert f"{telemetry}: graded from my-work/{telemetry}" in notes
    assert f"{trace_context}: graded from {Path(trace_context).name}" in notes
    assert f"{http_client}: graded from {Path(http_client).name}" in notes
    assert f"{workflows}: not in the submission (the unchanged exercise file was graded)" in notes


def test_an_upload_that_is_not_a_folder_is_refused(tmp_path, exercise):
    with pytest.raises(TargetError) as excinfo:
        assemble_submission(tmp_path / "missing", tmp_path / "tree", exercise=exercise)
    assert "no submission folder" in _one_line_error(excinfo)


def test_a_hostile_zip_in_an_upload_is_ignored(tmp_path, exercise):
    upload = tmp_path / "upload"
    upload.mkdir()
    _zip(upload / "evil.zip", {"../../escaped.py": "# escaped\n", Path(LEARNER_FILES[0]).name: "# in the zip\n"})
    notes = assemble_submission(upload, tmp_path / "tree", exercise=exercise)
    assert not list(tmp_path.rglob("escaped.py"))
    assert any(note.startswith("evil.zip: not used (unsafe path") for note in notes), notes
    assert all("not in the submission" in note for note in notes if not note.startswith("evil.zip")), notes


# -- prepare: the one policy (only the learner files count) --------------------------------------

def _full_tree(root: Path, exercise: Path) -> Path:
    """A copy of the stand-in exercise, as a learner would hand it in."""
    import shutil

    shutil.copytree(exercise, root)
    return root


def test_only_the_learner_files_count_and_edited_provided_files_are_named(tmp_path, exercise):
    tree = _full_tree(tmp_path / "mallory", exercise)
    (tree / LEARNER_FILES[0]).write_text("# the learner's own\n")
    (tree / "services" / "provided.py").write_text("import evil  # a loader in the provided code\n")
    (tree / "services" / "extra.py").write_text("# added\n")
    with prepare(tree, exercise=exercise) as prepared:
        graded = prepared.path
        assert (graded / LEARNER_FILES[0]).read_text() == "# the learner's own\n"
        assert (graded / "services" / "provided.py").read_text() == "# provided\n"   # the kit's
        assert not (graded / "services" / "extra.py").exists()
        warnings = " ".join(prepared.warnings)
        assert "provided files differ from the kit's and were not graded" in warnings
        assert "services/provided.py" in warnings and "services/extra.py" in warnings
    assert not graded.exists()


def test_an_untouched_copy_has_no_warning(tmp_path, exercise):
    with prepare(_full_tree(tmp_path / "alice", exercise), exercise=exercise) as prepared:
        assert prepared.warnings == []


def test_links_are_never_followed_and_are_reported(tmp_path, exercise):
    tree = _full_tree(tmp_path / "mallory", exercise)
    secret = tmp_path / "solution.py"
    secret.write_text("# the answer\n")
    (tree / LEARNER_FILES[1]).unlink()
    os.symlink(secret, tree / LEARNER_FILES[1])
    os.symlink(tmp_path, tree / "services" / "everything")
    with prepare(tree, exercise=exercise) as prepared:
        assert (prepared.path / LEARNER_FILES[1]).read_text() == f"# exercise {LEARNER_FILES[1]}\n"
        assert not (prepared.path / LEARNER_FILES[1]).is_symlink()
        warnings = " ".join(prepared.warnings)
        assert "symbolic links are never followed" in warnings
        assert LEARNER_FILES[1] in warnings and "services/everything" in warnings


def test_a_zip_holding_two_trees_is_refused_with_the_reason(tmp_path, scratch):
    archive = _zip(tmp_path / "two.zip", {"alice/services/shared/telemetry.py": "# one\n",
                                          "copy/services/shared/telemetry.py": "# two\n"})
    with pytest.raises(TargetError) as excinfo:
        resolve_target(archive)
    message = _one_line_error(excinfo)
    assert "2 trees" in message and "alice/" in message and "copy/" in message, message
    assert not list(scratch.iterdir())


def _zip_with_raw_name(path: Path, raw: bytes) -> Path:
    """A zip with a member whose name is the bytes `raw`, without the UTF-8 flag (as zip tools
    write names in a Latin-1 locale; zipfile itself only writes UTF-8)."""
    placeholder = b"X" * len(raw)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("exercise/services/__init__.py", "")
        zf.writestr("exercise/services/shared/__init__.py", "")
        zf.writestr(placeholder.decode(), "extra\n")
    path.write_bytes(path.read_bytes().replace(placeholder, raw))
    return path


def test_a_zip_name_that_is_not_utf8_is_a_clear_error(tmp_path, scratch):
    archive = _zip_with_raw_name(tmp_path / "latin1.zip", b"exercise/caf\xe9.txt")
    with pytest.raises(TargetError) as excinfo:
        resolve_target(archive)
    assert "not valid UTF-8" in _one_line_error(excinfo)
    assert not list(scratch.iterdir())


def test_a_bad_name_is_harmless_in_an_upload(tmp_path, exercise):
    upload = tmp_path / "upload"
    upload.mkdir()
    archive = _zip_with_raw_name(upload / "work.zip", b"exercise/caf\xe9.txt")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(f"exercise/{LEARNER_FILES[0]}", "# the learner's\n")
    with prepare(upload, upload=True, exercise=exercise) as prepared:
        assert (prepared.path / LEARNER_FILES[0]).read_text() == "# the learner's\n"


def test_the_solution_is_graded_over_the_provided_code_too(tmp_path):
    from kit import ROOT

    with prepare(ROOT / "solution") as prepared:
        for learner_file in LEARNER_FILES:
            assert (prepared.path / learner_file).read_bytes() == (ROOT / "solution" / learner_file).read_bytes()
        assert prepared.path != ROOT / "solution"
        assert prepared.warnings == [], prepared.warnings
