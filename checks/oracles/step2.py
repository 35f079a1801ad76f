"""Step 2's oracle, for the generated header sets of checks/test_step2_extract.py: which remote
parent `extract_context` may find (rules 2.1-2.4, 2.7, 2.8, 2.10).

A header set is described as checks/test_step2_extract.py's `header_sets()` draws it; a parent is
named by the header it comes from ("traceparent", "b3" or "multi" for X-B3-*), the check knows
that header's trace and span ids."""
from __future__ import annotations

from kit.harness.answers import oracle


@oracle
def oracle_parents(case: dict) -> list:
    """Every acceptable parent: (header, sampled or None when it is the sampler's to decide), or
    None for no remote parent."""
    def valid(name):
        return name in case and case[name][0] == "valid"

    if valid("traceparent"):
        return [("traceparent", case["traceparent"][1] == "01")]
    single = multi = None
    if valid("b3"):
        state = case["b3"][1]
        single = ("b3", None if state == "" else state in ("1", "d"))
    if valid("multi"):
        _, sampled, flags = case["multi"]
        multi = ("multi", True if flags == "1" else None if sampled is None else sampled == "1")
    b3 = single or multi
    answers = [b3]
    if "traceparent" in case:             # malformed traceparent: no parent, or valid B3 (rule 2.8)
        answers.append(None)
    if "b3" in case and single is None and multi is not None:
        answers.append(None)               # a malformed b3 beside valid X-B3-*: no parent, or X-B3-*
    return answers
