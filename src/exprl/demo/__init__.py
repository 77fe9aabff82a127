"""`exprl demo`: the embedded default, the whole protocol on the synthetic coverage task.

Base pre-training on easy chains -> Stage I with every method -> Stage II sparse GRPO from each ->
pass@k on held-out hard and easy problems -> report. Importing this package imports no torch.

`config.py` the settings, `runner.py` the run, `base.py` the base model's pre-training,
`conditions.py` the conditions measured on the base model, `oracle.py` the oracle dense reward,
`report.py` the report, `cli.py` the `exprl demo` command.
"""
