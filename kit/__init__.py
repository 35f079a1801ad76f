"""The workshop kit: course description, checks harness, grading and reports.

The grading process never imports learner code: `kit.grading.runner` runs the checks in a child
process. Modules used inside that child (`kit.harness.mesh`, `kit.harness.expect`, `kit.harness.learner`,
`kit.traces.text`, `kit.child.recorder`) import the target tree only when a check asks for it.
"""
from pathlib import Path

#: The kit's own root (where course.toml, checks/, exercise/ and solution/ live).
ROOT = Path(__file__).resolve().parent.parent
