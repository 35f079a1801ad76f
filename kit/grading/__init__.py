"""The grading process: everything `grade.py` runs in its own process. Nothing in this package
imports learner code; learner code runs only in the grading child (`kit.child`), forked from
the warm parent (`warm_parent.py`) and spoken to through `protocol.py`.

    commands.py     what grade.py does once its arguments are parsed
    submission.py   the one way a submission is taken in (folder, zip, Gradescope upload)
    runner.py       run the checks on a tree: children, time limits, results
    zygote.py       the warm parent, seen from here: start it, fork children through it
    warm_parent.py  the warm parent process itself (python -m kit.grading.warm_parent --serve)
    protocol.py     the messages between the processes, signed, with their names
    processes.py    killing process groups, leaving at once
    integrity.py    the kit's own files: a private copy for the child, tampering flagged
    watch.py        grade.py --watch
"""
