"""Functional tools: placeholders (``partial``) and composition (``composition``)."""

from . import composition as composition
from . import partial as partial
