"""Runners of the ``dbayes`` commands and the one module that knows run directories.

:mod:`.store` owns the layout (file names, atomic writes, verified reads, the --out guard);
:mod:`.train`, :mod:`.attack`, :mod:`.detect`, :mod:`.summarize` run one command each, and
:mod:`.reproduce` runs an experiment plan (``configs/*.yaml``) through them.
"""
from .store import RunError

__all__ = ["RunError"]
