"""The one registry of the suite's rules: every check and probe, its name, provenance and
what it verifies, declared once by a decorator next to the code that checks it (as
``@schemathesis.check`` does).

A rule is one of three kinds:

- a **response check** ``(ctx, response, case)``, run on every response the suite sees;
- a **probe** ``(t: Target)``, which sends its own requests and records its verdict;
- a **Schemathesis built-in** check, registered here with how to classify its failures.

Everything else reads this registry: :class:`~conformance.results.Results` refuses a name
it does not hold, the runner runs the probes in order, and the engine classifies a failure
with the rule's own ``classify``. Adding a rule is adding one decorated function.

The registry is filled once, when the rule modules are imported, and only read afterwards
(like Schemathesis' own check registry); :data:`REGISTRY` is that one instance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mockserver.contract import CONTRACT, DOCUMENTED

PROVENANCES = (DOCUMENTED, CONTRACT)


class Kind(StrEnum):
    RESPONSE = "response"  # judges every response: (ctx, response, case)
    PROBE = "probe"  # sends its own requests: (t: Target)
    BUILTIN = "builtin"  # one of Schemathesis' checks
    SHARED = "shared"  # its verdict is recorded by another rule's probe (one flow, several rules)


# (provenance reader, failure, exchange) -> documented | contract; see engine.Target.classify.
Classifier = Callable[[Any, Any, Any], str]


class UnknownRule(KeyError):
    """A rule name the registry does not hold (a typo, or a rule never registered)."""

    def __str__(self) -> str:
        return f"no rule named {self.args[0]!r} is registered"


@dataclass(frozen=True)
class Rule:
    name: str
    provenance: str
    description: str
    kind: Kind
    function: Callable[..., Any] | None = None
    # How a failure of this rule is classified documented/contract, when the failure does not
    # say so itself; None: the rule's own provenance.
    classify: Classifier | None = None
    # Where the vendor says it (quotes of docs/vendor/) and which openapi.yaml elements it
    # enforces (JSON pointers); tests hold both against the docs and the contract.
    sources: tuple[str, ...] = ()
    elements: tuple[str, ...] = ()
    # Probes run by stage, then in registration order (a later stage: spends what is left).
    stage: int = 0
    order: int = 0

    def __post_init__(self) -> None:
        if self.provenance not in PROVENANCES:
            raise ValueError(f"rule {self.name!r}: provenance must be one of {PROVENANCES}, not {self.provenance!r}")
        if not self.description:
            raise ValueError(f"rule {self.name!r} needs a description")


@dataclass
class Registry:
    rules: dict[str, Rule] = field(default_factory=dict)

    def add(self, rule: Rule) -> Rule:
        if rule.name in self.rules:
            raise ValueError(f"rule {rule.name!r} is registered twice")
        self.rules[rule.name] = rule
        return rule

    def __getitem__(self, name: str) -> Rule:
        try:
            return self.rules[name]
        except KeyError:
            raise UnknownRule(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self.rules

    def __iter__(self) -> Iterator[Rule]:
        return iter(sorted(self.rules.values(), key=lambda rule: (rule.stage, rule.order)))

    def of_kind(self, *kinds: Kind) -> list[Rule]:
        return [rule for rule in self if rule.kind in kinds]

    def functions(self, *kinds: Kind) -> tuple[Callable[..., Any], ...]:
        return tuple(rule.function for rule in self.of_kind(*kinds) if rule.function is not None)

    def _next_order(self) -> int:
        return len(self.rules)

    # -- the decorators ------------------------------------------------------------------

    def response_check(self, name: str | None = None, *, provenance: str = DOCUMENTED,
                       description: str | None = None, sources: tuple[str, ...] = (),
                       elements: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a Schemathesis-style response check (it also joins Schemathesis' registry)."""

        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            import schemathesis

            checked = schemathesis.check(function)
            self.add(Rule(name or function.__name__, provenance, description or _doc(function), Kind.RESPONSE,
                          checked, sources=sources, elements=elements, order=self._next_order()))
            return checked

        return register

    def probe(self, name: str | None = None, *, provenance: str = DOCUMENTED, description: str | None = None,
              sources: tuple[str, ...] = (), elements: tuple[str, ...] = (), stage: int = 0
              ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a behavioural probe ``(t: Target) -> None`` the runner calls in order."""

        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            self.add(Rule(name or function.__name__, provenance, description or _doc(function), Kind.PROBE,
                          function, sources=sources, elements=elements, stage=stage, order=self._next_order()))
            return function

        return register

    def shared(self, name: str, *, provenance: str = DOCUMENTED, description: str,
               sources: tuple[str, ...] = (), elements: tuple[str, ...] = ()) -> str:
        """Register a rule whose verdict a probe of another rule records; returns its name."""
        self.add(Rule(name, provenance, description, Kind.SHARED, sources=sources, elements=elements,
                      order=self._next_order()))
        return name

    def builtin(self, function: Callable[..., Any], *, provenance: str = DOCUMENTED, description: str,
                classify: Classifier | None = None, elements: tuple[str, ...] = ()) -> Callable[..., Any]:
        """Register one of Schemathesis' own checks, under its own name."""
        self.add(Rule(function.__name__, provenance, description, Kind.BUILTIN, function, classify=classify,
                      elements=elements, order=self._next_order()))
        return function


def _doc(function: Callable[..., Any]) -> str:
    return (function.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")


REGISTRY = Registry()
response_check = REGISTRY.response_check
probe = REGISTRY.probe
shared = REGISTRY.shared
builtin = REGISTRY.builtin
