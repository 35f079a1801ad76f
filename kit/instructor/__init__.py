"""Tools for instructors: grade a class (`batch.py`), prove the checks catch mistakes
(`selftest.py`), build an autograder package (`package.py`), compare a learner's files with the
reference (`review.py`)."""
