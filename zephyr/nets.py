"""The nets: plain functions ``(params, [state,] [key,] x, *hyperparameters)``, all @flexible."""

from ._nets._linear import BranchLinearParams as BranchLinearParams
from ._nets._linear import LinearParams as LinearParams
from ._nets._linear import branch_linear as branch_linear
from ._nets._linear import linear as linear
from ._nets._linear import linear_like as linear_like
from ._nets._linear import mlp as mlp
from .functools._composition import chain as chain
from .functools._composition import skip as skip
from ._nets._norm import BatchNormState as BatchNormState
from ._nets._norm import NormParams as NormParams
from ._nets._norm import RMSNormParams as RMSNormParams
from ._nets._norm import batch_norm as batch_norm
from ._nets._norm import group_norm as group_norm
from ._nets._norm import layer_norm as layer_norm
from ._nets._norm import rms_norm as rms_norm
from ._nets._attention import AttentionParams as AttentionParams
from ._nets._attention import AttentionProjectionParams as AttentionProjectionParams
from ._nets._attention import KVCache as KVCache
from ._nets._attention import KeyValueProjectionParams as KeyValueProjectionParams
from ._nets._attention import dot_product_attention as dot_product_attention
from ._nets._attention import init_kv_cache as init_kv_cache
from ._nets._attention import multi_head_attention as multi_head_attention
from ._nets._attention import multi_head_self_attention as multi_head_self_attention
from ._nets._attention import multi_head_self_attention_step as multi_head_self_attention_step
from ._nets._attention import single_head_attention as single_head_attention
