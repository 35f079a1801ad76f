"""Traces as data and as pictures: one span model and one tree walker (`model.py`), the kit's own
analysis (`analysis.py`; in the learner release, `learners_analysis.py` in its place, which asks
the learner's own Step 5 instead), the text tree in check failures (`text.py`), the SVG waterfall
(`waterfall.py`) and service map (`service_map.py`), colours and the one duration format
(`style.py`), and OTLP JSON (`otlp.py`). Nothing here imports learner code except
`learners_analysis.py`."""
