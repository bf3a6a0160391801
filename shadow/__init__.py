"""shadow-harness: run a new dispatch engine in shadow mode, catalogue the differences, cut over.

The runtime and composition root: model, config, replay, pipeline, baseline, CLI.
Import from the modules (`shadow.model`, `shadow.replay` …); this package
imports nothing on its own so that `shadow --help` stays quick.
"""
