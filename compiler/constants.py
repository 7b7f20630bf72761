"""Names the compiler writes and plan/apply look for: one definition, so the two sides agree.

Kept free of imports: plan/apply must not load the models (pydantic) on their fast path."""

MANAGED_TAG = "managed-by:chapctl"  # every deployment chapctl owns carries it; only those are pruned
