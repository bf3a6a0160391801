"""Triage: a verdict on a quirk becomes its rule file (comments kept) and its catalogue row.

One implementation behind `shadow quirks triage` and the triage page. The rule
file is the record — versioned and reviewed like code — and the catalogue
follows it (`Catalogue.apply_rules`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit

from rules.catalogue import Catalogue, Quirk
from rules.compare import Comparator
from rules.normalise import Normaliser
from rules.paths import PathGlob
from rules.rulefile import RuleSet, Verdict, load_rules, now_utc, parse_rule_file
from shadow import audit
from shadow.errors import ShadowError

__all__ = ["triage", "RulesTest", "test_rule_file", "rule_file_for", "suggested_rule_text", "preview_rule_text", "save_rule_text"]


def _new_rule_document(quirk: Quirk) -> tomlkit.TOMLDocument:
    document = tomlkit.document()
    document.add(tomlkit.comment(f"Quirk {quirk.id}: {quirk.description}"))
    document.add(tomlkit.comment(f"field {quirk.field}, change {quirk.change}, transition {quirk.transition}"))
    document.add(tomlkit.comment(f"seen at {', '.join(quirk.paths)} in {', '.join(quirk.commands)}"))
    if quirk.example is not None:
        example = quirk.example
        document.add(tomlkit.comment(f"e.g. {example.path}: legacy {example.legacy!r} vs new {example.new!r}"[:200]))
    document.add(tomlkit.nl())
    return document


def triage(catalogue: Catalogue, rules_folder: Path, quirk_id: str, verdict: Verdict, *, owner: str,
           note: str | None = None, ticket: str | None = None) -> Path:
    """Record a verdict on one quirk in its rule file and in the catalogue; returns the file."""
    if not owner.strip():
        raise ShadowError("a verdict needs an owner", hint="pass --owner NAME: who decided")
    quirk = catalogue.quirk(quirk_id)
    rules = load_rules(rules_folder)
    path = rules.file_for(quirk.id) or rules_folder / f"quirk-{quirk.id}.toml"
    if path.exists():
        document = tomlkit.parse(path.read_text(encoding="utf-8"))
    else:
        document = _new_rule_document(quirk)
    table = document.get("quirk")
    if table is None:
        table = tomlkit.table()
        document.append("quirk", table)
    table["id"] = quirk.id
    table["verdict"] = verdict
    table["owner"] = owner
    for key, value in (("note", note), ("ticket", ticket)):
        if value is not None:
            table[key] = value
    table["decided_at"] = now_utc()
    text = tomlkit.dumps(document)
    parse_rule_file(text, str(path))  # never write a file the next run would refuse
    rules_folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    catalogue.apply_rules(load_rules(rules_folder))
    audit.append(catalogue.engine, actor=owner, action="verdict", subject=f"quirk:{quirk.id}",
                 detail={"from": quirk.verdict, "to": verdict, "note": note, "ticket": ticket, "rule_file": path.name})
    return path


@dataclass
class RulesTest:
    """What a new or changed rule file would do to the stored differences, before it is committed."""

    file: str
    pairs: int = 0
    differences_before: int = 0
    differences_after: int = 0
    matched: dict[str, int] = field(default_factory=dict)      # quirk → differences the rule removes
    closed: list[str] = field(default_factory=list)             # quirks left with no difference
    appeared: dict[str, int] = field(default_factory=dict)      # quirks the rule creates
    verdicts: dict[str, str] = field(default_factory=dict)      # quirk → verdict the file would give

    @property
    def removed(self) -> int:
        """Stored differences the rule file would match (and so remove)."""
        return sum(self.matched.values())

    def to_dict(self) -> dict[str, object]:
        """A JSON-able view."""
        return {"file": self.file, "pairs": self.pairs, "differences_before": self.differences_before,
                "differences_after": self.differences_after, "removed": self.removed, "matched": self.matched,
                "closed": self.closed, "appeared": self.appeared, "verdicts": self.verdicts}


def test_rule_file(catalogue: Catalogue, rules_folder: Path | None, candidate: Path) -> RulesTest:
    """Re-compare every stored pair with the rules as they would be with `candidate`; write nothing."""
    try:
        text = candidate.read_text(encoding="utf-8")
    except OSError as exc:
        raise ShadowError(f"{candidate}: cannot be read: {exc}") from None
    rule = parse_rule_file(text, str(candidate)).model_copy(update={"path": candidate})
    current = load_rules(rules_folder)
    files = [f for f in current.files if f.path is None or f.path.name != candidate.name] + [rule]
    comparator = Comparator(Normaliser(RuleSet(files).steps))
    before = catalogue.difference_counts()
    after: Counter[str] = Counter()
    report = RulesTest(file=str(candidate))
    for pair in catalogue.stored_pairs():
        report.pairs += 1
        for difference in comparator.compare(pair).differences:
            after[difference.quirk] += 1
    report.differences_before, report.differences_after = sum(before.values()), sum(after.values())
    for quirk_id, count in before.items():
        if after[quirk_id] < count:
            report.matched[quirk_id] = count - after[quirk_id]
        if after[quirk_id] == 0:
            report.closed.append(quirk_id)
    report.appeared = {q: n for q, n in after.items() if q not in before}
    if rule.quirk is not None:
        report.verdicts[rule.quirk.id] = rule.quirk.verdict
    if rule.noise:
        globs = [PathGlob.compile(n.path) for n in rule.noise]
        for quirk in catalogue.quirks():
            if any(g.matches(p) for g in globs for p in quirk.paths) and quirk.id not in current.decisions:
                report.verdicts.setdefault(quirk.id, "noise")
    report.closed.sort()
    return report


# -- editing a quirk's rule file whole (the triage page's rule editor) ------------------------------

# The normalisation a transition class usually gets, as TOML lines after `path = …`.
_SUGGESTED_STEP = {
    "trailing-whitespace": ["trim = true"], "leading-whitespace": ["trim = true"], "whitespace": ["trim = true"],
    "case-only": ["casefold = true"], "null-vs-empty": ["null_equals_empty = true"],
    "list-order": ["unordered = true"], "float-epsilon": ["tolerance = { relative = 1e-9 }"],
    "rounding": ["tolerance = { absolute = 0.01 }"], "boolean-representation": ['coerce = "boolean"'],
    "sub-second-precision": ["timestamp = { tolerance_ms = 1000 }"], "datetime-format": ["timestamp = {}"],
    "timezone-shift": ['timestamp = { assume_timezone = "America/Chicago" }  # the zone legacy writes in'],
}


def rule_file_for(rules_folder: Path, quirk_id: str) -> Path:
    """The file holding a quirk's verdict, or the one `triage` would create for it."""
    return load_rules(rules_folder).file_for(quirk_id) or rules_folder / f"quirk-{quirk_id}.toml"


def suggested_rule_text(quirk: Quirk) -> str:
    """A starting point for a quirk that has no rule file yet: what it is, and the step its class usually gets,
    commented out (a rule file changes comparisons only once someone means it to)."""
    lines = tomlkit.dumps(_new_rule_document(quirk)).rstrip("\n").splitlines()
    path = quirk.paths[0] if len(quirk.paths) == 1 else f"**.{quirk.field.rsplit('.', 1)[-1]}"
    step = list(_SUGGESTED_STEP.get(quirk.transition, []))
    if quirk.transition == "type-change" and quirk.example is not None:
        step = [f'coerce = "{"number" if isinstance(quirk.example.new, (int, float)) else "string"}"']
    if quirk.transition == "enum-mapping" and quirk.example is not None:
        step = [f"value_map = {{ {tomlkit.string(str(quirk.example.legacy)).as_string()} = "
                f"{tomlkit.string(str(quirk.example.new)).as_string()} }}  # one entry per legacy code"]
    if step:
        lines += ["", "# A normalisation this kind of difference usually gets: uncomment it to apply it.",
                  "# [[normalise]]", f"# path = {tomlkit.string(path).as_string()}"] + [f"# {s}" for s in step]
    return "\n".join(lines) + "\n"


def _checked(text: str, quirk: Quirk, path: Path) -> None:
    rule = parse_rule_file(text, path.name)
    if rule.quirk is not None and rule.quirk.id != quirk.id:
        raise ShadowError(f"{path.name}: [quirk] id {rule.quirk.id!r} is not this quirk ({quirk.id})",
                          hint="a quirk's rule file holds that quirk's verdict only")


def preview_rule_text(catalogue: Catalogue, rules_folder: Path, quirk_id: str, text: str) -> RulesTest:
    """`test_rule_file` for text that would replace a quirk's rule file: what it would match and close. Writes
    nothing in the rules folder."""
    import tempfile

    quirk = catalogue.quirk(quirk_id)
    path = rule_file_for(rules_folder, quirk.id)
    _checked(text, quirk, path)
    with tempfile.TemporaryDirectory(prefix="shadow-rule-") as folder:
        candidate = Path(folder) / path.name  # same name: it stands in for the current file
        candidate.write_text(text, encoding="utf-8")
        report = test_rule_file(catalogue, rules_folder, candidate)
    report.file = str(path)
    return report


def save_rule_text(catalogue: Catalogue, rules_folder: Path, quirk_id: str, text: str, *, actor: str,
                   note: str | None = None) -> Path:
    """Replace a quirk's rule file with `text` (validated first), bring verdicts in line, and audit it.

    Normalisation steps change comparisons from the next `shadow compare` (or `--recompute`) on.
    """
    if not actor.strip():
        raise ShadowError("a rule change needs an actor", hint="who changed it")
    quirk = catalogue.quirk(quirk_id)
    path = rule_file_for(rules_folder, quirk.id)
    _checked(text, quirk, path)
    before = path.read_text(encoding="utf-8") if path.exists() else None
    rules_folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    try:
        catalogue.apply_rules(load_rules(rules_folder))
    except ShadowError:
        if before is None:
            path.unlink()
        else:
            path.write_text(before, encoding="utf-8")
        raise
    audit.append(catalogue.engine, actor=actor, action="rule", subject=f"quirk:{quirk.id}",
                 detail={"rule_file": path.name, "created": before is None, "note": note,
                         "lines": len(text.splitlines())})
    return path
