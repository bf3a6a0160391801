"""Comparison semantics: paths, rule files, normalisation, transition classes, the comparator,
the quirk catalogue and its store, noise detection and triage."""
