"""Names the flow and chapctl must agree on. No imports: chapctl reads this without Prefect."""

BLOCK_TYPE_SLUG = "chap-dhis2-credentials"  # the Dhis2Credentials block type
