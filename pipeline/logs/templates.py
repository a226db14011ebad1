"""Online template mining with drain3, and the fixed channel set that templates map onto.

Drain (He et al., ICWS 2017) groups log messages into templates online with a fixed-depth parse
tree: a message goes down by its token count and first tokens, then joins the leaf's template
with the highest share of equal tokens if that share reaches the similarity threshold, or starts
a new template. drain3 is its maintained implementation. It numbers templates 1, 2, 3, ... in the
order they appear, and a template keeps its number when it generalises.

The pipeline's model needs a fixed channel set, so template numbers map onto channels by that
order: templates 1 to ``template_channels - 1`` have a channel each and every later template
shares the last one. Two more channels count all lines and the lines that started a new template.

References
----------
.. [1] P. He, J. Zhu, Z. Zheng and M. R. Lyu, "Drain: An Online Log Parsing Approach with Fixed
   Depth Tree", IEEE ICWS 2017.
"""

from __future__ import annotations

import logging

from drain3 import TemplateMiner
from drain3.memory_buffer_persistence import MemoryBufferPersistence
from drain3.template_miner_config import TemplateMinerConfig

logger = logging.getLogger(__name__)

#: Channel with the number of lines in a bucket.
LINES_CHANNEL = "lines"
#: Channel with the number of lines in a bucket that started a new template.
NEW_TEMPLATES_CHANNEL = "new_templates"
#: Channel shared by every template past the ones with a channel of their own.
OTHER_TEMPLATES_CHANNEL = "template_other"


def template_channel_names(template_channels: int) -> list[str]:
    """Channel names of a bucket record, in order: line count, new templates, one per template."""
    if template_channels < 1:
        raise ValueError(f"template_channels = {template_channels} must be at least 1")
    width = len(str(template_channels))
    own = [f"template_{number:0{width}d}" for number in range(1, template_channels)]
    return [LINES_CHANNEL, NEW_TEMPLATES_CHANNEL, *own, OTHER_TEMPLATES_CHANNEL]


class TemplateChannels:
    """drain3's template miner with templates mapped onto ``template_channels`` channels.

    Parameters
    ----------
    template_channels
        Channels for templates; the last one is shared by templates past the first
        ``template_channels - 1``.
    similarity_threshold
        drain3 ``sim_th``: share of equal tokens a message needs to join a template.
    tree_depth
        drain3 ``depth`` of the parse tree, at least 3.

    Examples
    --------
    >>> channels = TemplateChannels(template_channels=4)
    >>> channels.add("node 17 started"), channels.add("node 23 started")
    ((0, True), (0, False))
    >>> channels.templates()
    [(1, 'node <*> started', 2)]
    """

    def __init__(
        self, *, template_channels: int, similarity_threshold: float = 0.4, tree_depth: int = 4
    ) -> None:
        self.names = template_channel_names(template_channels)
        self.template_channels = template_channels
        config = TemplateMinerConfig()
        # Settings are given here, not read from a drain3.ini, so that drain3 neither looks for
        # the file nor warns that it is missing.
        config.drain_sim_th = similarity_threshold
        config.drain_depth = tree_depth
        config.snapshot_compress_state = True
        self.miner = TemplateMiner(persistence_handler=None, config=config)

    def add(self, message: str) -> tuple[int, bool]:
        """Mine one message; return the index of its template among the template channels
        (0-based) and whether it started a new template."""
        result = self.miner.add_log_message(message)
        number = result["cluster_id"]
        return min(number, self.template_channels) - 1, result["change_type"] == "cluster_created"

    def templates(self) -> list[tuple[int, str, int]]:
        """``(number, template, lines)`` of every template mined so far, by number."""
        clusters = sorted(self.miner.drain.clusters, key=lambda cluster: cluster.cluster_id)
        return [(c.cluster_id, c.get_template(), c.size) for c in clusters]

    def state_bytes(self) -> bytes:
        """The miner's state as drain3 snapshots it (jsonpickle, zlib, base64)."""
        handler = MemoryBufferPersistence()
        self.miner.persistence_handler = handler
        try:
            self.miner.save_state("checkpoint")
        finally:
            self.miner.persistence_handler = None
        return handler.state

    def load_state_bytes(self, state: bytes) -> None:
        """Restore a state from :meth:`state_bytes`."""
        handler = MemoryBufferPersistence()
        handler.state = state
        self.miner.persistence_handler = handler
        try:
            self.miner.load_state()
        finally:
            self.miner.persistence_handler = None
        logger.info("restored %d log templates", len(self.miner.drain.clusters))
