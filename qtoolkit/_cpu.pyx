"""The one CPU probe of qtoolkit: ``qt_cpu.h`` answers, ``qtoolkit._dispatch`` decides.

Every compiled kernel family receives the level id chosen by ``qtoolkit._dispatch``;
nothing else in the package asks the CPU what it supports.
"""

cdef extern from "qt_cpu.h" nogil:
    int QT_N_LEVELS
    int qt_cpu_has(int level)
    const char *qt_level_name(int level)

#: Level names, indexed by the C level id (``QT_LEVEL_*`` in ``qt_cpu.h``).
LEVEL_NAMES = tuple(qt_level_name(i).decode() for i in range(QT_N_LEVELS))


def cpu_has(int level):
    """True if the CPU (and the OS) support the instruction-set level with C id ``level``."""
    return bool(qt_cpu_has(level))
