"""Judge layer: prompts, parsing, backends, cache, rubrics, calibration."""
