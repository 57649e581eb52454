"""rdbench's conformance kit over this package's records: one line."""

from rdbench.testing import conformance

test_example_plugin = conformance(
    sources=["example-uniform"],
    estimators=["example-slb"],
    codecs=["example-usq"],
    profile="smoke",
)
