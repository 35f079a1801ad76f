"""The oracles: small, plainly correct implementations of the contract's rules that the checks
compare the learner's answers with, one module per step or extension (`step2`, `step4`, `step5`,
`e1` ... `e4`; helpers they share in `_shared`).

They are answers, so they live apart from the checks. Each public function is an `@oracle`
(`kit.harness.answers`) and a pure function of its arguments (a stateful one, like the circuit
breaker's, computes the whole expected story of a scenario up front). That makes them tables:
`python -m kit.harness.generated` records every call the checks make on the reference answer into
`checks/cases/answers/<module>.json`, and the learner release (`kit.instructor.release`) ships,
in place of each module here, one that looks those answers up, without a line of the logic.

Public names here are `@oracle` functions only; helpers are private (a leading underscore).
"""
