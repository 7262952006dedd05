"""Statistics of graded traces: the paper's self-correction metrics and the collapse
detector (`metrics`), the paired bootstrap over problems and seeds (`intervals`), and
reading trace files written by anyone (`tracefile`: the columns `score metrics` needs).

Imports `score_core.base` and `problems` (answer normalisation) only.
"""
