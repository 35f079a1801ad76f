"""How fast `python grade.py` is, against the cost of importing the kit's dependencies.

Runs, side by side and alternating, N times each:
  - a bare interpreter importing the dependencies the graded services and checks use (the
    generated checks' Hypothesis and the async checks' pytest-asyncio included);
  - `python grade.py --solution` end to end (grading every check);
  - the time until `python grade.py` prints its first line.
Prints the medians and the verdicts for the targets of issue 4: grading <= 2x the import cost,
first line within 0.5 s.

    python benchmarks/bench_grade.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPORTS = ("import fastapi, httpx, respx, pytest, structlog, redis, fakeredis, pydantic_settings, "
           "opentelemetry.sdk.trace, opentelemetry.instrumentation.fastapi, "
           "opentelemetry.instrumentation.httpx, opentelemetry.instrumentation.redis, "
           "opentelemetry.instrumentation.sqlite3, opentelemetry.propagators.b3, "
           "opentelemetry.sdk.trace.export.in_memory_span_exporter, hypothesis, pytest_asyncio")


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def first_line(command: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.kill()
    proc.wait()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    imports, grades, firsts = [], [], []
    for _ in range(args.repeat):
        imports.append(timed([sys.executable, "-c", IMPORTS]))
        grades.append(timed([sys.executable, "grade.py", "--solution"]))
        firsts.append(first_line([sys.executable, "grade.py", "--solution"]))
    imp, grade, first = (statistics.median(x) for x in (imports, grades, firsts))
    ratio = grade / imp
    print(f"medians of {args.repeat} runs")
    print(f"  import the dependencies (bare interpreter)  {imp * 1000:7.0f} ms")
    print(f"  python grade.py --solution (end to end)      {grade * 1000:7.0f} ms  = {ratio:.2f}x the imports"
          f"  (target <= 2.0x): {'PASS' if ratio <= 2.0 else 'FAIL'}")
    print(f"  first line of output                         {first * 1000:7.0f} ms"
          f"  (target <= 500 ms): {'PASS' if first <= 0.5 else 'FAIL'}")
    return 0 if ratio <= 2.0 and first <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
