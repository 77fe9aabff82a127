"""Test and benchmark tooling for exprl, kept out of the wheel (it is not under src/).

    loopback   a real OpenAI-compatible HTTP server on 127.0.0.1 that misbehaves on request
    hacking    clean right, clean wrong and attack traces for red-teaming a judge
    corpora    catalog-shaped data files generated from templates
    bpe        a tiny byte-level BPE tokenizer trained on the spot

The tests import it through pytest's `pythonpath` (pyproject.toml), the benchmark scripts through
benchmarks/_paths.py; both put the repository root on sys.path. Nothing under src/ may import it:
tests/test_wheel.py checks that the wheel holds none of it.
"""
