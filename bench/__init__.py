"""Benchmarks of micheck's engine against Song & Ermon (ICLR 2020): fidelity and speed.

Run ``python -m bench --help``. Results go to docs/bench/ (CSVs, figures); the write-up
is docs/benchmarks.md.
"""
