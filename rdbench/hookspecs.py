"""Hook specifications: what a plugin module may implement.

A plugin is a module named by an entry point in the ``rdbench`` group::

    [project.entry-points.rdbench]
    my-plugin = "my_package.rdbench_plugin"

It implements any of the hooks below, decorated with :data:`hookimpl`. Keep the module
cheap to import: point each record's ``factory`` at the module that does the work.
"""

from __future__ import annotations

import pluggy

from rdbench.records import CodecRecord, EstimatorRecord, SourceRecord

PROJECT = "rdbench"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorate a plugin's hook functions with this.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def rdbench_sources() -> list[SourceRecord]:
    """Sources this plugin provides; each factory returns a :class:`rdbench.Source`."""


@hookspec
def rdbench_estimators() -> list[EstimatorRecord]:
    """R(D) estimators; each factory returns a :class:`rdbench.Estimator`."""


@hookspec
def rdbench_codecs() -> list[CodecRecord]:
    """Codecs; each factory returns a :class:`rdbench.Codec`."""
