"""`--catalog` / `--topology` for the commands that read or fill the catalog, and the checks of
the catalog they read (a clear error before any work, never a traceback).

The catalog is `--catalog` if given, else the catalog of `--topology` (default ./topology.yaml if
that file exists), else ./catalog.
"""

from __future__ import annotations

from pathlib import Path

import click

from actors.topology import TopologyError, load_topology

DEFAULT_CATALOG = "catalog"
DEFAULT_TOPOLOGY = "topology.yaml"


def catalog_options(f):  # noqa: ANN001, ANN201
    f = click.option("--topology", type=click.Path(dir_okay=False),
                     help=f"The mesh's topology file: its catalog is the default --catalog "
                          f"[default: ./{DEFAULT_TOPOLOGY} if present].")(f)
    f = click.option("--catalog", default=None,
                     help=f"Catalog root directory [default: the topology's catalog, else ./{DEFAULT_CATALOG}].")(f)
    return f


def catalog_and_endpoint(catalog: str | None, topology: str | None) -> tuple[str, str | None]:
    """The catalog (see the module doc) and the ingest endpoint of the topology's mesh (None
    without a topology)."""
    path = topology or DEFAULT_TOPOLOGY
    if topology is None and not Path(path).is_file():
        return catalog or DEFAULT_CATALOG, None
    try:
        topo, _ = load_topology(path, catalog=catalog)
    except TopologyError as exc:
        if topology is None and catalog is not None:  # not asked for and not needed
            return catalog, None
        raise click.BadParameter(str(exc), param_hint="--topology") from None
    return topo.catalog, topo.endpoint("ingest")


def existing_catalog(catalog: str | None, topology: str | None) -> str:
    """The catalog to read; a ClickException (exit 1) if it is not an existing directory."""
    root, _ = catalog_and_endpoint(catalog, topology)
    path = Path(root)
    if not path.exists():
        raise click.ClickException(f"catalog {root}: no such directory (nothing stored yet? give --catalog DIR "
                                   f"or --topology FILE)")
    if not path.is_dir():
        raise click.ClickException(f"catalog {root}: not a directory")
    return root
