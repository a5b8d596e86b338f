"""The `wgfast` command: `up`/`down` (wg-quick's job), `show`, `showconf`, key tools,
`reresolve`, and `bench` (from `wgfast.bench`).

    main       the argument parser and the subcommands
    quick      up/down with a journal and rollback
    show       what `wg show` prints, from a UAPI snapshot
    reresolve  host-name endpoints looked up again

It stands on top: on the API, the benchmarks and the shared leaves.
"""
