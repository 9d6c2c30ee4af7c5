"""Tags and paths of parameters: labels for optax, masks, selections (see ``zephyr._tags``)."""

from .core._types import Leaf as Leaf
from ._tags import Selector as Selector
from ._tags import labels as labels
from ._tags import leaf_info as leaf_info
from ._tags import mask as mask
from ._tags import matches as matches
from ._tags import partition as partition
from ._tags import paths as paths
from ._tags import scale_by_depth as scale_by_depth
from ._tags import select as select
from ._tags import tag as tag
from ._tags import tags as tags

__all__ = ["Leaf", "Selector", "labels", "leaf_info", "mask", "matches", "partition", "paths", "scale_by_depth", "select", "tag", "tags"]
