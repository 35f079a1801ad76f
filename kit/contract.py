"""The learner-facing API's rules, as `docs/learner-api.md` numbers them.

`load_rules()` reads every numbered rule of that page (`- **4.6** ...`): its id, its section
(`"0"`..`"6"`, `"E1"`..`"E4"`), its text, and its kind:

- `RULE`: behaviour the checks verify and a mutant can break;
- `EITHER`: the contract allows two readings; the checks drive the case and accept both (no
  mutant can break it, by definition);
- `HOW`: says how the checks drive the learner's code (a promise of the checks themselves).

Every check declares the rules it verifies (`@check(..., rules=("4.14", "4.16"))`), every
selftest mutant the rules it breaks (`rules = [...]` in its manifest), and
`tests/test_contract.py` holds both lists to this one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from kit import ROOT

REFERENCE = ROOT / "docs" / "learner-api.md"

RULE, EITHER, HOW = "rule", "either", "how"

_RULE_LINE = re.compile(r"^- \*\*((?:E\d|\d)\.\d+)\*\*\s*(.*)$")


@dataclass(frozen=True)
class Rule:
    id: str          # "4.6", "E3.2"
    section: str     # "4", "E3"
    text: str        # the rule as the reference words it (continuation lines joined)
    kind: str        # RULE, EITHER or HOW


def parse_rules(markdown: str) -> tuple[Rule, ...]:
    """Every numbered rule of a reference page, in page order."""
    rules: list[list[str]] = []
    open_rule = False                     # the previous line belongs to the last rule
    for line in markdown.splitlines():
        match = _RULE_LINE.match(line)
        if match:
            rules.append([match[1], match[2].strip()])
            open_rule = True
        elif open_rule and line.startswith("  ") and line.strip() and not line.lstrip().startswith(("- ", "```")):
            rules[-1][1] += " " + line.strip()
        else:
            open_rule = False             # a blank line, a heading or anything else ends it
    out = []
    for rule_id, text in rules:
        kind = EITHER if "*(either)*" in text else HOW if "*(how we check)*" in text else RULE
        out.append(Rule(rule_id, rule_id.split(".")[0], text, kind))
    return tuple(out)


@lru_cache(maxsize=None)
def load_rules(path: Path = REFERENCE) -> tuple[Rule, ...]:
    """The rules of the kit's learner reference (cached)."""
    return parse_rules(Path(path).read_text(encoding="utf-8"))


def rule_ids(path: Path = REFERENCE) -> set[str]:
    return {r.id for r in load_rules(path)}
