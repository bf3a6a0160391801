"""Everything that talks to the outside world: targets, state readers, pair sinks and sources.

`adapters.protocols` declares the extension points; `adapters.http`, `adapters.jsonl`
and `adapters.memory` implement them.
"""
