"""Traces as data and as pictures, with no learner code involved: one span model and one tree
walker (`model.py`), the kit's own analysis (`analysis.py`), the text tree in check failures
(`text.py`), the SVG waterfall (`waterfall.py`) and service map (`service_map.py`), colours and
the one duration format (`style.py`), and OTLP JSON (`otlp.py`)."""
