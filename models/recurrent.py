"""The recurrent model zoo for cognitive (sequence) paradigms, one module per family:

- :mod:`switchbench.models.leaky_rnn`: Yang et al.'s leaky RNN (``leaky-rnn``), one per task
  (``per-task-rnn``), the seed-stacked learners and helpers the other families build on;
- :mod:`switchbench.models.consolidation`: the leaky RNN with EWC and SI at task boundaries
  (``leaky-rnn-ewc``, ``leaky-rnn-si``);
- :mod:`switchbench.models.gated_rnn`: the leaky RNN with gated readouts (``gated-rnn``);
- :mod:`switchbench.models.molap`: modular latent primitives (``modular-primitives``) and the
  neurogym corpus they pretrain on;
- :mod:`switchbench.models.gru`: the GRU baseline (``gru``).

This module re-exports their classes and functions, for code written when they were one module.
"""
from switchbench.models.consolidation import ConsolidatedRNN, StackedConsolidatedRNN
from switchbench.models.gated_rnn import GatedRNN, StackedGatedRNN
from switchbench.models.leaky_rnn import (ACTIVATIONS, GRAD_CLIP, TAU, W_REC_GAIN, LeakyRNN, PerTaskRNN, StackedPerTaskRNN,
                                          StackedRNN, StackedTaskRNN, adam_settings, apply_to_optimiser, clip_and_step,
                                          derive_alpha, generator_on, leak, random_orthogonal, seed_losses, seed_noise,
                                          stack_adam, stack_like, unstack_adam)
from switchbench.models.molap import ModularPrimitives, StackedModularPrimitives, corpus_ids

__all__ = ["ACTIVATIONS", "GRAD_CLIP", "TAU", "W_REC_GAIN", "ConsolidatedRNN", "GatedRNN", "LeakyRNN",
           "ModularPrimitives", "PerTaskRNN", "StackedConsolidatedRNN", "StackedGatedRNN", "StackedModularPrimitives",
           "StackedPerTaskRNN", "StackedRNN", "StackedTaskRNN", "adam_settings", "apply_to_optimiser", "clip_and_step",
           "corpus_ids", "derive_alpha", "generator_on", "leak", "random_orthogonal", "seed_losses", "seed_noise",
           "stack_adam", "stack_like", "unstack_adam"]
