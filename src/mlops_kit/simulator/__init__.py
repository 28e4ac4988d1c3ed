"""The demo's stand-ins for the world outside the kit: production traffic and a human reviewer.

Notebook 04 and ``mlops-kit simulate`` need traffic to monitor and, later, someone to label the
captured cases. ``shifts`` changes held-out records the way the field changes; ``traffic`` sends
them to the API and keeps their true class aside; ``reviewer`` labels a review set with that
truth, through the same labelling path a human's CSV takes. The loop (monitoring, capture,
labels, retrain) imports nothing from here.
"""
