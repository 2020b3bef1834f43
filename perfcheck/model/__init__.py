"""Records every layer shares: histograms (ns) and the BPF slot layout, measurements and
their rounds, session summaries, the drift control's measurement, names, a scenario's
status. Imports nothing of perfcheck but the base modules.
"""
