"""Several recorder nodes on one database and one shared folder (see ``docs/cluster.md``).

* :mod:`.models` -- ``cluster_nodes`` (one lease per node) and ``cluster_jobs`` (run-once work);
* :mod:`.lease` -- :class:`~.lease.NodeLease`: acquire/renew/release, takeover and job claims;
* :mod:`.node` -- :class:`~.node.NodeService`: the heartbeat and takeover loop inside ``serve``.
"""
