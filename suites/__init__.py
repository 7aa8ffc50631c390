"""The suite files shipped with switchbench (package data): ``quick`` (the main job of
``make run``) and ``full`` (the committed leaderboard). ``switchbench suite quick`` and
``switchbench leaderboard`` find them from any folder; a path to a TOML file works too."""
