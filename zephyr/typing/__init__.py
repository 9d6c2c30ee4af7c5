"""zephyr's named types, shapes by signature, and run-time checking.

- ``Params``, ``ParamsTree``, ``PRNGKey``, ``Shape``, ``DType``, ``Initializer``, ``PlaceholderType``: the
  types that zephyr's signatures use.
- ``checking(True)`` / ``ZEPHYR_TYPECHECK=1``: beartype + jaxtyping checks of annotated nets.
- ``params_layout(net)``: the leaves a net's params annotation declares.
- ``python -m zephyr.typing.stubgen``: stubs in which holes are typed (``linear(_, _, 256)``
  is a function of ``(params, x)`` to mypy and pyright), for zephyr (shipped in the wheel)
  and for your own ``@flexible`` functions (``python -m zephyr.typing.stubgen mypkg``).
"""

from ..core._types import DType as DType
from ..core._types import Initializer as Initializer
from ..core._types import Params as Params
from ..core._types import ParamsTree as ParamsTree
from ..functools._partial import PlaceholderType as PlaceholderType
from ..core._types import PRNGKey as PRNGKey
from ..core._types import Shape as Shape
from ._checking import checking as checking
from ._checking import is_checking as is_checking
from ._dims import parse_dims as parse_dims
from ._signature import params_layout as params_layout

__all__ = [
    "DType",
    "Initializer",
    "PRNGKey",
    "Params",
    "ParamsTree",
    "PlaceholderType",
    "Shape",
    "checking",
    "is_checking",
    "params_layout",
    "parse_dims",
]
