from __future__ import annotations

import pytest

# Failures the schemathesis run finds outside this module's reach, reported to the code's owners;
# each entry goes once its fix lands (the test then passes, and shows as XPASS until removed).
KNOWN = {
    "test_validator[POST /v1/admin/sessions][postgresql]": "a username of 65-100 characters is a 500 on "
    "PostgreSQL: audit_events.target_id is varchar(64)",
    "test_validator[POST /v1/admin/admins][postgresql]": "a username of 65-100 characters is a 500 on "
    "PostgreSQL: audit_events.target_id is varchar(64)",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if reason := KNOWN.get(item.name):
            item.add_marker(pytest.mark.xfail(reason=f"reported: {reason}", strict=False))
