"""What runs inside the grading child, beside the learner's code: the pytest plugin that records
each check's result (`recorder.py`) and the guard over the modules grading relies on
(`guard.py`). Of `kit.grading` it uses only the protocol and the process helpers."""
