"""``quota-conformance proxy``: the suite's rules, applied to live traffic between an app and
a deployment (:mod:`.forwarding` relays, :mod:`.judge` judges, :mod:`.traffic_rules` holds
the stateful rules traffic alone can prove)."""
