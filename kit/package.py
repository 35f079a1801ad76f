"""The grader on the platforms schools run: a Gradescope autograder, a GitHub Classroom workflow.

`python grade.py --package gradescope [--output ZIP]` builds `dist/gradescope-autograder.zip`
(`build_gradescope`), to upload as an assignment's autograder. It holds:

- `setup.sh` and `run_autograder` (from `packaging/gradescope/`), at the top, as Gradescope wants;
- the grader: `grade.py`, `kit/`, `checks/`, `course.toml`, `pyproject.toml`, `README.md`;
- `exercise/`: the provided service code the learner's files are graded with.

Never `solution/` or `selftest/` (the learners' code runs in the same container and could read
them). `setup.sh` installs Python 3.11+ if needed and the kit with pip into `/autograder/venv`;
`run_autograder` calls `python -m kit.package gradescope-run`, which:

1. takes the six learner files from `/autograder/submission` (at their path in the tree,
   `services/shared/telemetry.py`, or anywhere by their file name; a `.zip` in the submission
   is unpacked first) and copies them over the kit's own copy of `exercise/`: everything else
   (the provided services) is the kit's, whatever the submission holds;
2. grades that tree with the kit's checks (`kit.runner.run_checks`);
3. writes `/autograder/results/results.json` with `kit.formats.gradescope`. If nothing can be
   graded, it still writes one: score 0 and what went wrong, so the learner sees why.

The GitHub Classroom workflow template is `packaging/github-classroom.yml` (see the README's
instructor section): one autograding step per success criterion, worth its points.
"""
from __future__ import annotations

import argparse
import json
import shutil
import stat
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from kit import ROOT
from kit.course import load_course

#: What goes into the Gradescope zip, relative to the kit's root (folders recursively).
GRADESCOPE_CONTENTS = ("grade.py", "pyproject.toml", "README.md", "course.toml", "kit", "checks", "exercise")
GRADESCOPE_SCRIPTS = ROOT / "packaging" / "gradescope"
_SKIP = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}


class PackageError(ValueError):
    """The package cannot be built; the message says why."""


def build_gradescope(output: Path | None = None) -> Path:
    """Build the Gradescope autograder zip and return its path."""
    output = Path(output) if output is not None else ROOT / "dist" / "gradescope-autograder.zip"
    if output.suffix.lower() != ".zip":
        raise PackageError(f"--output {output}: the Gradescope package is a .zip file")
    missing = [p for p in (*GRADESCOPE_CONTENTS, "packaging/gradescope/setup.sh", "packaging/gradescope/run_autograder")
               if not (ROOT / p).exists()]
    if missing:
        raise PackageError(f"the kit is incomplete, missing: {', '.join(missing)}")
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for script in ("setup.sh", "run_autograder"):
            _add(archive, GRADESCOPE_SCRIPTS / script, script, executable=True)
        for part in GRADESCOPE_CONTENTS:
            path = ROOT / part
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                rel = file.relative_to(ROOT)
                if _SKIP & set(rel.parts) or file.suffix == ".pyc":
                    continue
                _add(archive, file, rel.as_posix(), executable=bool(file.stat().st_mode & stat.S_IXUSR))
    temporary.replace(output)
    return output


def _add(archive: zipfile.ZipFile, path: Path, name: str, *, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))  # the same zip for the same kit
    info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, path.read_bytes())


# -- on the platform -----------------------------------------------------------------------------

def assemble_submission(submission: Path, dest: Path, exercise: Path = ROOT / "exercise") -> list[str]:
    """Copy `exercise` to `dest` and the learner files found in `submission` over it.

    Returns notes for the learner: which files were taken and which were not submitted."""
    submission = Path(submission)
    if not submission.is_dir():
        raise PackageError(f"{submission}: no submission folder")
    shutil.copytree(exercise, dest, ignore=shutil.ignore_patterns(*_SKIP, "*.pyc"))
    unpacked = Path(tempfile.mkdtemp(prefix="workshop-submission-"))
    try:
        candidates = _files(submission)
        for archive in [f for f in candidates if f.suffix.lower() == ".zip"]:
            _unzip(archive, unpacked / archive.stem)
        candidates += _files(unpacked)
        notes = []
        for learner_file in load_course().learner_files:
            found = _pick(candidates, learner_file)
            if found is None:
                notes.append(f"{learner_file}: not in the submission (the unchanged exercise file was graded)")
                continue
            shutil.copyfile(found, dest / learner_file)
            source = found.name if found.is_relative_to(unpacked) else found.relative_to(submission)
            notes.append(f"{learner_file}: graded from {source}")
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
    return notes


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
                  and not (_SKIP & set(p.relative_to(folder).parts)) and "__MACOSX" not in p.parts)


def _pick(candidates: list[Path], learner_file: str) -> Path | None:
    """The submitted file for `learner_file`: one at that path (the shortest such path), else the
    only file with that name."""
    suffix = PurePosixPath(learner_file).parts
    at_path = [p for p in candidates if p.parts[-len(suffix):] == suffix]
    if at_path:
        return min(at_path, key=lambda p: len(p.parts))
    named = [p for p in candidates if p.name == suffix[-1]]
    return named[0] if len(named) == 1 else None


def _unzip(archive: Path, into: Path) -> None:
    from kit.targets import TargetError, _extract

    try:
        into.mkdir(parents=True)
        _extract(archive, into)
    except (zipfile.BadZipFile, OSError, TargetError):
        pass  # not a usable zip: its files are simply not found


def gradescope_run(submission: Path, results: Path, *, check_timeout_s: float = 10.0) -> dict:
    """What `run_autograder` does: assemble, grade, write results.json; returns what it wrote."""
    from kit.formats.gradescope import to_gradescope
    from kit.runner import run_checks

    results.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="workshop-gradescope-"))
    try:
        notes = assemble_submission(submission, scratch / "tree")
        report = run_checks(scratch / "tree", check_timeout_s=check_timeout_s)
        data = json.loads(to_gradescope(report))
        data["output"] = "\n".join([data.get("output", ""), "", "Files graded:", *[f"- {n}" for n in notes]]).strip()
    except Exception as exc:  # noqa: BLE001 - the learner must always get a results.json
        data = {"score": 0, "output": f"The submission could not be graded: {exc}", "visibility": "visible",
                "stdout_visibility": "hidden", "tests": []}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    (results / "results.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kit.package")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("gradescope-run", help="what run_autograder does")
    run.add_argument("--submission", default="/autograder/submission")
    run.add_argument("--results", default="/autograder/results")
    run.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    data = gradescope_run(Path(args.submission), Path(args.results), check_timeout_s=args.timeout)
    sys.stdout.write(f"score {data['score']}: results in {Path(args.results) / 'results.json'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
