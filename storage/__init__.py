"""Storage: the catalog's NautilusTrader-readable Parquet files, written by the writer, read by anyone.

Named `storage`, not `catalog`: `./catalog` is where topology.yaml puts the data by default.

Owns the table layout (`schema`), the files and their crash-safe replacement (`files`), the writer's
storage layer (`store`), the writer lock (`lock`), what the files hold (`coverage`, `gaps`,
`series`), reading them back for people (`query`, `frames`, `summary`), directory checks (`paths`)
and the one-time upgrade of older catalogs (`upgrade`). Usable without a running mesh: the CLI,
benchmarks and tests read and write through it directly.
"""
