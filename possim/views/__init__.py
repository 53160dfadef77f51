"""What a person reads: the point of a run, timelines, console, HTML report, charts, Mermaid, the message
sequence, the glossary, progress, the trainer's demo and lab.

Imports nothing itself: ``import possim.views.<module>`` loads only that module.
"""
