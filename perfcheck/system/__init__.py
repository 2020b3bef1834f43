"""The machine: block targets and their safety checks, network namespaces, cgroups, kernel
settings changed for a run (journalled), the host lock, state directories, processes and
set-up commands, the kernel's build, the recorded environment, ``perfcheck doctor``.
"""
