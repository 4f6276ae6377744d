"""The built-in kinds of sweep task, one module each (``docs/contributing.md``, "A new sweep task kind"):
``finetune`` (:mod:`.finetune`), ``probe`` (:mod:`.probe`), ``plasticity`` (:mod:`.analysis`) and ``start``
(:mod:`.start`). Importing this package registers them (:func:`vitplast.sweep.task.register`), in the order tables and status list them.
"""

from __future__ import annotations

from vitplast.sweep.kinds.analysis import AnalysisKind, AnalysisTask
from vitplast.sweep.kinds.finetune import FinetuneKind
from vitplast.sweep.kinds.probe import ProbeKind, ProbeTask
from vitplast.sweep.kinds.start import StartKind, StartTask
from vitplast.sweep.task import TaskKind, kind_of, register

#: The built-in kinds (their names: ``FINETUNE.name`` ...), for code that reads one kind's tasks or counts.
FINETUNE = register(FinetuneKind())
PROBE = register(ProbeKind())
ANALYSIS = register(AnalysisKind())
START = register(StartKind())

__all__ = ["ANALYSIS", "FINETUNE", "PROBE", "START", "AnalysisKind", "AnalysisTask", "FinetuneKind", "ProbeKind",
           "ProbeTask", "StartKind", "StartTask", "TaskKind", "kind_of", "register"]
