"""The nets: plain functions ``(params, [state,] [key,] x, *hyperparameters)``, all @flexible."""

from ._nets._linear import BranchLinearParams as BranchLinearParams
from ._nets._linear import LinearParams as LinearParams
from ._nets._linear import branch_linear as branch_linear
from ._nets._linear import linear as linear
from ._nets._linear import linear_like as linear_like
from ._nets._linear import mlp as mlp
from .functools._composition import chain as chain
from .functools._composition import skip as skip
