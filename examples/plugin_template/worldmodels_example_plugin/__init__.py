"""A template worldmodels plug-in: registers the ``example-topk`` sampler.

worldmodels calls :func:`register` through the ``worldmodels.plugins`` entry point declared in
this package's ``pyproject.toml``.
"""


def register() -> None:
    """Import the modules whose ``@worldmodels.register`` decorators add our components."""
    from worldmodels_example_plugin import sampler  # noqa: F401
