"""What the conformance suite does not get right yet, as measured by
``python -m tests.conformance.score --fast``. Helper "conf" shrinks both sets as its rules land.

- A mutant in ``EXPECTED_MISSES`` is not yet caught by its named rule: its test is
  xfail(strict=False). Every other mutant's test asserts that its rule fails.
- A variant in ``EXPECTED_FALSE_FAILURES`` is a correct deployment the suite still fails: its
  test is xfail(strict=True), so fixing the suite makes the test say "remove it from the set".
"""

EXPECTED_MISSES: frozenset[str] = frozenset({
    # Key scope is the contract's choice (openapi.yaml marks it so): the rule WARNS under the
    # default profile, and the staging run uses the default profile.
    "keys_global_across_api_keys",
    "keys_scoped_by_key_prefix",
    # The float error only shows when 0.29 is the first amount taken from a pool of exactly
    # 1000.0; after the run's other grants the float pool drifts above the true value, and
    # int(pool * 1e6) is then exact on every delta the rule measures.
    "developer_balance_float_dollars",
    # Found only when the schema-driven phase happens to generate an integral float
    # max_tokens: Hypothesis mixes in constants from the project's loaded modules, so adding
    # modules (these mutants) changed what it generates. Issue 10 wants this planted
    # regression found every time: a rule that sends 3.0 for integer fields would.
    "integral_float_max_tokens_crashes",
    # Added after the last measurement and not caught by their rule yet.
    "concurrent_chats_overspend",
    "empty_bearer_accepted",
    "grant_answer_echoes_request",
    "insufficient_balance_as_200",
    "money_with_thousands_separator",
    "numeric_ids_coerced",
    "pool_debited_for_refused_grants",
    "refused_chat_still_charges",
})

EXPECTED_FALSE_FAILURES: frozenset[str] = frozenset({
})
