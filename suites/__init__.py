"""The suite files shipped with switchbench (package data): ``quick`` (the main job of
``make run``), ``full`` (the committed leaderboard) and ``forgetting`` (the setting of the
finding cognitive-forgetting, on which EWC's and SI's strengths are tuned). ``switchbench suite quick`` and
``switchbench leaderboard`` find them from any folder; a path to a TOML file works too."""
