"""A fake DHIS2 with chap-core behind its `chap` route, for the prediction flow's tests and demo.

In-process:   `with FakeDhis2Server(password="pw", today=date(2026, 3, 10)) as fake: fake.url`
Standalone:   `python -m tests.fake_dhis2 --port 0 --password pw` prints the URL it listens on.
Both are controlled the same way, over HTTP: `FakeAdmin(url)` / the `/__fake__/` endpoints.
"""

from tests.fake_dhis2.admin import FakeAdmin
from tests.fake_dhis2.server import DEFAULT_PASSWORD, DEFAULT_USERNAME, FakeDhis2Server

__all__ = ["DEFAULT_PASSWORD", "DEFAULT_USERNAME", "FakeAdmin", "FakeDhis2Server"]
