"""Judge backends: each turns `JudgeRequest`s into `JudgeResult`s (see `exprl.judge.types.Backend`).

Imported lazily by `exprl.judge.service.build_judge`, so that choosing one backend never imports
another's dependencies (openai, torch).
"""
