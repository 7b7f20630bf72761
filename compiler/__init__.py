"""chapctl: DHIS2/CHAP forecast projects as reviewed YAML, compiled into Prefect deployments.

`__version__` is chapctl's release (pyproject.toml's `version`; a test holds them equal). It is
also the version of the flow an installed chapctl carries (`flows/`): a repository whose flows
come from the package (`source: {package: chapctl}`) records it in its deployments' pull step,
and a worker refuses to run a flow of another release (`flows/installed.py`)."""

__version__ = "0.1.0"
