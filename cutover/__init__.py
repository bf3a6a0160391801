"""The route table: which target is primary, per zone (`cutover.routing`)."""
