"""Bring the four processes up natively (docs/architecture.md): PostgreSQL, mock_platform, api, worker.

    with Topology(TopologyConfig(artifact_dir=Path("artifacts/x"))) as topo:
        topo.env  # the runtime environment an operator would ``source``

CLI: ``python -m scripts.topology up|down|status --help``.
"""

from scripts.topology.lifecycle import Topology, TopologyConfig, TopologyError

__all__ = ["Topology", "TopologyConfig", "TopologyError"]
