"""The grader on the platforms schools run: a Gradescope autograder, a GitHub Classroom workflow.

`python grade.py --package gradescope [--output ZIP]` builds `dist/gradescope-autograder.zip`
(`build_gradescope`), to upload as an assignment's autograder. It holds:

- `setup.sh` and `run_autograder` (from `packaging/gradescope/`), at the top, as Gradescope wants;
- the grader: `grade.py`, `kit/`, `checks/`, `course.toml`, `pyproject.toml`, `README.md`;
- `exercise/`: the provided service code the learner's files are graded with.

Never `solution/` or `selftest/` (the learners' code runs in the same container and could read
them). `setup.sh` installs Python 3.11+ if needed and the kit with pip into `/autograder/venv`;
`run_autograder` calls `python -m kit.instructor.package gradescope-run`, which:

1. takes the six learner files from `/autograder/submission` (at their path in the tree,
   `services/shared/telemetry.py`, or anywhere by their file name; a `.zip` in the submission
   is unpacked first) and copies them over the kit's own copy of `exercise/`: everything else
   (the provided services) is the kit's, whatever the submission holds;
2. grades that tree with the kit's checks (`kit.grading.runner.run_checks`);
3. writes `/autograder/results/results.json` with `kit.formats.gradescope`. If nothing can be
   graded, it still writes one: score 0 and what went wrong, so the learner sees why.

The GitHub Classroom workflow template is `packaging/github-classroom.yml` (see the README's
instructor section): one autograding step per success criterion, worth its points.
"""
from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import zipfile
from pathlib import Path

from kit import ROOT
from kit.grading.submission import prepare

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

def gradescope_run(submission: Path, results: Path, *, check_timeout_s: float = 10.0) -> dict:
    """What `run_autograder` does: assemble, grade, write results.json; returns what it wrote."""
    from kit.formats.gradescope import to_gradescope
    from kit.grading.runner import run_checks

    results.mkdir(parents=True, exist_ok=True)
    try:
        with prepare(submission, upload=True) as prepared:
            report = run_checks(prepared.path, check_timeout_s=check_timeout_s)
            notes = prepared.notes
        data = json.loads(to_gradescope(report))
        lines = [data.get("output", ""), "", "Files graded:", *[f"- {n}" for n in notes]]
        if report.warnings:
            lines += ["", "Warnings:", *[f"- {w}" for w in report.warnings]]
        data["output"] = "\n".join(lines).strip()
    except Exception as exc:  # noqa: BLE001 - the learner must always get a results.json
        data = {"score": 0, "output": f"The submission could not be graded: {exc}", "visibility": "visible",
                "stdout_visibility": "hidden", "tests": []}
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    temporary = results / f".results.json.{os.getpid()}.tmp"
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, results / "results.json")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kit.instructor.package")
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
