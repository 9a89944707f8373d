"""The one registry of the suite's rules: every rule's id, provenance and what it verifies,
declared once by a decorator next to the code that checks it (as ``@schemathesis.check`` does).

A rule is an invariant of the contract, named ``<family>.<what>`` (docs/conformance.md lists
them). It is checked by one or both of:

- a **response check** ``(ctx, response, case)``, run on every response the suite sees
  (Schemathesis' built-in checks are registered the same way, with how to classify them);
- a **probe** ``(p: Probe)``, a property whose inputs Hypothesis varies: it sends its own
  requests, within the money the run gives it, and records its verdicts.

Everything else reads this registry: :class:`~conformance.results.Results` refuses a name it
does not hold, the runner plans and runs the probes, and the engine classifies a failure with
the rule's own ``classify``. Adding a rule is adding one decorated function.

The registry is filled once, when the rule modules are imported, and only read afterwards
(like Schemathesis' own check registry); :data:`REGISTRY` is that one instance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mockserver.contract import CONTRACT, DOCUMENTED

PROVENANCES = (DOCUMENTED, CONTRACT)
# The report lists rules by family, in this order, then as they were registered.
FAMILIES = ("schema", "errors", "money", "grant", "idem", "identity", "user", "chat", "auth", "packages", "me",
            "edges")


class Kind(StrEnum):
    RESPONSE = "response"  # judges every response: (ctx, response, case)
    PROBE = "probe"  # sends its own requests: (p: Probe)
    BUILTIN = "builtin"  # one of Schemathesis' checks
    SHARED = "shared"  # its verdicts are recorded by another rule's probe, from the same requests


class Needs(StrEnum):
    """What a probe needs beyond a key; a run without it reports the rule skipped, saying why."""

    WRITES = "writes"  # sends grants or chats (not in --read-only)
    CHAT = "chat"  # sends chats (not with --no-chat)
    SECOND_KEY = "second_key"  # --second-api-key
    RETENTION = "retention"  # --retention-check or --state-file


# (provenance reader, failure, exchange) -> documented | contract; see engine.Target.classify.
Classifier = Callable[[Any, Any, Any], str]


class UnknownRule(KeyError):
    """A rule id the registry does not hold (a typo, or a rule never registered)."""

    def __str__(self) -> str:
        return f"no rule named {self.args[0]!r} is registered"


@dataclass(frozen=True)
class Cost:
    """What one example of a probe may grant, in micro-dollars (every grant request counts,
    replays included: a lax server could credit any of them). ``examples`` is how many the
    probe runs when the budget allows; the first is the one a small budget buys."""

    per_example: int = 0
    examples: int = 1
    # The least the probe can run with (its free parts); None: one whole example.
    minimum: int | None = None
    # The most it can put to use (its sharpest inputs can cost more than an example); None:
    # ``examples`` examples.
    most: int | None = None
    # What its first example, the sharpest inputs, can put to use: served to every rule, in
    # priority order, before any rule's further examples. None: one example's cost.
    sharp: int | None = None

    @property
    def full(self) -> int:
        return self.per_example * self.examples if self.most is None else self.most

    @property
    def least(self) -> int:
        return self.per_example if self.minimum is None else self.minimum


@dataclass(frozen=True)
class Rule:
    name: str
    provenance: str
    description: str
    kind: Kind
    check: Callable[..., Any] | None = None
    probe: Callable[..., Any] | None = None
    # How a failure is classified documented/contract when it does not say so itself; None:
    # the rule's own provenance.
    classify: Classifier | None = None
    # Where the vendor says it (quotes of docs/vendor/, "seed: ..." or "public-facts: ...") and
    # which openapi.yaml elements it enforces (JSON pointers); tests hold both against the docs
    # and the contract. A finding may carry a narrower mark (the contract-chosen part of a
    # documented rule): the element it actually breaks.
    sources: tuple[str, ...] = ()
    elements: tuple[str, ...] = ()
    # The contract's own choices (elements marked contract, or a prefix of them) this rule also
    # judges: its findings there are marked contract, warnings under the documented profile.
    choices: tuple[str, ...] = ()
    cost: Cost = Cost()
    needs: frozenset[Needs] = frozenset()
    # Rules whose verdicts this rule's probe records too (they watch the same requests).
    records: tuple[str, ...] = ()
    # Probes run by stage, then by registration order; a later stage spends what is left.
    stage: int = 0
    order: int = 0

    def __post_init__(self) -> None:
        if self.provenance not in PROVENANCES:
            raise ValueError(f"rule {self.name!r}: provenance must be one of {PROVENANCES}, not {self.provenance!r}")
        if not self.description:
            raise ValueError(f"rule {self.name!r} needs a description")

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]


@dataclass
class Registry:
    rules: dict[str, Rule] = field(default_factory=dict)

    def add(self, rule: Rule) -> Rule:
        """Register ``rule``; a response check and a probe of one rule may come separately."""
        known = self.rules.get(rule.name)
        if known is None:
            self.rules[rule.name] = dataclasses.replace(rule, order=len(self.rules))
            return self.rules[rule.name]
        both = {known.kind, rule.kind} == {Kind.RESPONSE, Kind.PROBE}
        if not both or known.provenance != rule.provenance:
            raise ValueError(f"rule {rule.name!r} is registered twice")
        probe, check = (rule, known) if rule.kind is Kind.PROBE else (known, rule)
        merged = dataclasses.replace(probe, check=check.check, order=known.order,
                                     sources=tuple(dict.fromkeys(known.sources + rule.sources)),
                                     elements=tuple(dict.fromkeys(known.elements + rule.elements)),
                                     choices=tuple(dict.fromkeys(known.choices + rule.choices)))
        self.rules[rule.name] = merged
        return merged

    def __getitem__(self, name: str) -> Rule:
        try:
            return self.rules[name]
        except KeyError:
            raise UnknownRule(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self.rules

    def __iter__(self) -> Iterator[Rule]:
        def rank(rule: Rule) -> tuple[int, int]:
            family = FAMILIES.index(rule.family) if rule.family in FAMILIES else len(FAMILIES)
            return family, rule.order

        return iter(sorted(self.rules.values(), key=rank))

    def __len__(self) -> int:
        return len(self.rules)

    def probes(self) -> list[Rule]:
        """The rules with a probe, in the order they run."""
        return sorted((r for r in self.rules.values() if r.probe is not None), key=lambda r: (r.stage, r.order))

    def response_checks(self) -> tuple[Callable[..., Any], ...]:
        return tuple(rule.check for rule in self if rule.check is not None and rule.kind is not Kind.BUILTIN)

    def of_kind(self, *kinds: Kind) -> list[Rule]:
        return [rule for rule in self if rule.kind in kinds]

    def by_check_name(self, check_name: str) -> Rule:
        """The rule of a check function, by the name Schemathesis reports it under."""
        for rule in self.rules.values():
            if rule.check is not None and rule.check.__name__ == check_name:
                return rule
        raise UnknownRule(check_name)

    # -- the decorators ------------------------------------------------------------------

    def response_check(self, name: str, *, provenance: str = DOCUMENTED, description: str | None = None,
                       sources: tuple[str, ...] = (), elements: tuple[str, ...] = (), choices: tuple[str, ...] = ()
                       ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a Schemathesis-style response check (it also joins Schemathesis' registry)."""

        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            import schemathesis

            checked = schemathesis.check(function)
            self.add(Rule(name, provenance, description or _doc(function), Kind.RESPONSE, check=checked,
                          sources=sources, elements=elements, choices=choices))
            return checked

        return register

    def probe(self, name: str, *, provenance: str = DOCUMENTED, description: str | None = None,
              sources: tuple[str, ...] = (), elements: tuple[str, ...] = (), choices: tuple[str, ...] = (),
              cost: Cost = Cost(),
              needs: tuple[Needs, ...] = (), records: tuple[str, ...] = (), stage: int = 0
              ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a rule's probe ``(p: Probe) -> None``; the runner plans and runs it."""

        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            self.add(Rule(name, provenance, description or _doc(function), Kind.PROBE, probe=function,
                          sources=sources, elements=elements, choices=choices, cost=cost, needs=frozenset(needs),
                          records=records, stage=stage))
            return function

        return register

    def shared(self, name: str, *, provenance: str = DOCUMENTED, description: str,
               sources: tuple[str, ...] = (), elements: tuple[str, ...] = ()) -> str:
        """Register a rule whose verdicts another rule's probe records; returns its id."""
        self.add(Rule(name, provenance, description, Kind.SHARED, sources=sources, elements=elements))
        return name

    def builtin(self, name: str, function: Callable[..., Any], *, provenance: str = DOCUMENTED, description: str,
                classify: Classifier | None = None, sources: tuple[str, ...] = (),
                elements: tuple[str, ...] = (), choices: tuple[str, ...] = ()) -> Callable[..., Any]:
        """Register one of Schemathesis' own checks under a rule id."""
        self.add(Rule(name, provenance, description, Kind.BUILTIN, check=function, classify=classify,
                      sources=sources, elements=elements, choices=choices))
        return function


def _doc(function: Callable[..., Any]) -> str:
    """The first paragraph of a docstring, on one line, as plain text."""
    return " ".join((function.__doc__ or "").strip().split("\n\n")[0].split()).replace("``", "`")


REGISTRY = Registry()
response_check = REGISTRY.response_check
probe = REGISTRY.probe
shared = REGISTRY.shared
builtin = REGISTRY.builtin
