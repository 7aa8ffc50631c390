"""The commands of the ``switchbench`` command line, one module each (``switchbench
COMMAND``): :mod:`.list`, :mod:`.run`, :mod:`.reproduce`, :mod:`.suite`, :mod:`.leaderboard`,
:mod:`.tune`. Each module has ``add(sub)``, which declares its parser (the options shared by
every command that runs models come from :mod:`.options`), and ``main(args) -> int``, which
runs it. :mod:`switchbench.benchmark.cli` assembles them and turns errors into exit codes.

Modules here import only the standard library at the top: heavy libraries are imported by
``main``, so that ``switchbench --help`` answers at once.
"""

#: the command modules, in the order ``switchbench --help`` lists them
COMMANDS = ("list", "run", "reproduce", "suite", "leaderboard", "tune")
